// Package secrets keeps the gateway's secrets on disk, one file per secret with
// 0600 permissions, and copies the ones a function names into that function's
// own secrets directory (what OpenFaaS mounts at /var/openfaas/secrets).
package secrets

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"sync"
)

var (
	// ErrNotFound is returned for a secret that does not exist.
	ErrNotFound = errors.New("secret not found")
	// ErrExists is returned when creating a secret that exists.
	ErrExists = errors.New("secret already exists")
	// ErrInvalidName is returned for a name that is not a DNS-1123 subdomain.
	ErrInvalidName = errors.New("invalid secret name")
)

var nameRE = regexp.MustCompile(`^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$`)

// ValidName checks a secret name: lowercase DNS-1123 subdomain, at most 253 chars.
func ValidName(name string) error {
	if len(name) > 253 || !nameRE.MatchString(name) {
		return fmt.Errorf("%w %q: want lowercase letters, digits, '-' and '.', starting and ending with a letter or digit, at most 253 characters", ErrInvalidName, name)
	}
	return nil
}

// Store is a directory of secrets.
type Store struct {
	dir string
	mu  sync.RWMutex
}

// Open returns the store in dir, creating it with 0700 permissions.
func Open(dir string) (*Store, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("secrets dir: %w", err)
	}
	return &Store{dir: dir}, nil
}

// List returns the secret names, sorted.
func (s *Store) List() ([]string, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	ents, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range ents {
		if e.Type().IsRegular() && ValidName(e.Name()) == nil {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	return names, nil
}

// Put writes a secret; create says whether it must be new (else it must exist).
func (s *Store) Put(name string, value []byte, create bool) error {
	if err := ValidName(name); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	p := filepath.Join(s.dir, name)
	_, err := os.Stat(p)
	switch {
	case create && err == nil:
		return fmt.Errorf("%w: %s", ErrExists, name)
	case !create && errors.Is(err, os.ErrNotExist):
		return fmt.Errorf("%w: %s", ErrNotFound, name)
	}
	return writeFile(p, value)
}

// Read returns a secret's value.
func (s *Store) Read(name string) ([]byte, error) {
	if err := ValidName(name); err != nil {
		return nil, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	b, err := os.ReadFile(filepath.Join(s.dir, name))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, name)
	}
	return b, err
}

// Delete removes a secret.
func (s *Store) Delete(name string) error {
	if err := ValidName(name); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := os.Remove(filepath.Join(s.dir, name)); errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("%w: %s", ErrNotFound, name)
	} else if err != nil {
		return err
	}
	return nil
}

// Materialize replaces dir's content with a copy of the named secrets (dir
// 0700, files 0600); a missing secret is ErrNotFound and dir is left untouched.
func (s *Store) Materialize(dir string, names []string) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	values := make(map[string][]byte, len(names))
	for _, n := range names {
		if err := ValidName(n); err != nil {
			return err
		}
		b, err := os.ReadFile(filepath.Join(s.dir, n))
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("%w: %s (create it first: faas-cli secret create %s)", ErrNotFound, n, n)
		} else if err != nil {
			return err
		}
		values[n] = b
	}
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	for n, b := range values {
		if err := writeFile(filepath.Join(dir, n), b); err != nil {
			return err
		}
	}
	return nil
}

// writeFile writes atomically with 0600 permissions.
func writeFile(path string, b []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		_ = tmp.Close()
		return err
	}
	if _, err := tmp.Write(b); err != nil {
		_ = tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
