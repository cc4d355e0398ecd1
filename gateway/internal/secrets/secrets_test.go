package secrets

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestStore(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s, err := Open(filepath.Join(dir, "store"))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Put("aigw-jwt-signing-key", []byte("k1"), true); err != nil {
		t.Fatal(err)
	}
	if err := s.Put("aigw-jwt-signing-key", []byte("k2"), true); !errors.Is(err, ErrExists) {
		t.Errorf("create twice: %v", err)
	}
	if err := s.Put("missing", []byte("x"), false); !errors.Is(err, ErrNotFound) {
		t.Errorf("update missing: %v", err)
	}
	if err := s.Put("aigw-jwt-signing-key", []byte("k2"), false); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"", "../x", "A", "a/b", "-a"} {
		if err := s.Put(bad, nil, true); !errors.Is(err, ErrInvalidName) {
			t.Errorf("Put(%q): %v", bad, err)
		}
	}
	fi, err := os.Stat(filepath.Join(dir, "store", "aigw-jwt-signing-key"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("secret file mode: %v %v", fi, err)
	}
	names, err := s.List()
	if err != nil || len(names) != 1 || names[0] != "aigw-jwt-signing-key" {
		t.Errorf("List = %v, %v", names, err)
	}
	fnDir := filepath.Join(dir, "fn")
	if err := s.Materialize(fnDir, []string{"aigw-jwt-signing-key", "nope"}); !errors.Is(err, ErrNotFound) {
		t.Errorf("materialize missing: %v", err)
	}
	if err := s.Materialize(fnDir, []string{"aigw-jwt-signing-key"}); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(fnDir, "aigw-jwt-signing-key"))
	if err != nil || string(b) != "k2" {
		t.Errorf("materialized = %q, %v", b, err)
	}
	if err := s.Delete("aigw-jwt-signing-key"); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete("aigw-jwt-signing-key"); !errors.Is(err, ErrNotFound) {
		t.Errorf("delete twice: %v", err)
	}
}
