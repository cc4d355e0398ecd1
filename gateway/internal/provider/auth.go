package provider

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"

	"github.com/openfaas/faas-provider/auth"
)

// Credential file names, as OpenFaaS mounts them.
const (
	UserFile     = "basic-auth-user"
	PasswordFile = "basic-auth-password"
)

// EnsureCredentials makes sure dir holds basic-auth-user and
// basic-auth-password, generating them (user admin, a random password, files
// 0600) when both are missing; generated says whether it did.
func EnsureCredentials(dir string) (generated bool, err error) {
	_, errU := os.Stat(filepath.Join(dir, UserFile))
	_, errP := os.Stat(filepath.Join(dir, PasswordFile))
	switch {
	case errU == nil && errP == nil:
		return false, nil
	case !errors.Is(errU, os.ErrNotExist) || !errors.Is(errP, os.ErrNotExist):
		return false, fmt.Errorf("basic auth: %s must hold both %s and %s (%v, %v)", dir, UserFile, PasswordFile, errU, errP)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return false, err
	}
	var b [24]byte
	if _, err := rand.Read(b[:]); err != nil {
		return false, err
	}
	if err := os.WriteFile(filepath.Join(dir, UserFile), []byte("admin"), 0o600); err != nil {
		return false, err
	}
	if err := os.WriteFile(filepath.Join(dir, PasswordFile), []byte(base64.RawURLEncoding.EncodeToString(b[:])), 0o600); err != nil {
		return false, err
	}
	return true, nil
}

// ReadCredentials reads the credentials as OpenFaaS does.
func ReadCredentials(dir string) (*auth.BasicAuthCredentials, error) {
	r := auth.ReadBasicAuthFromDisk{SecretMountPath: dir}
	c, err := r.Read()
	if err != nil {
		return nil, fmt.Errorf("basic auth: %w", err)
	}
	return c, nil
}

// RequireBasicAuth answers 401 unless the request carries the credentials.
func RequireBasicAuth(c *auth.BasicAuthCredentials, next http.HandlerFunc) http.HandlerFunc {
	return auth.DecorateWithBasicAuth(next, c)
}
