package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aigw/aigw/internal/algorithm"
	"github.com/aigw/aigw/internal/testleak"
)

func TestMain(m *testing.M) { testleak.Main(m) }

func TestHashesAndCopiesTheFirstFile(t *testing.T) {
	dir, out := t.TempDir(), t.TempDir()
	a, b := filepath.Join(dir, "1-a.bin"), filepath.Join(dir, "2-b.txt")
	if err := os.WriteFile(a, []byte("first file"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(b, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	sum := func(s string) string { h := sha256.Sum256([]byte(s)); return hex.EncodeToString(h[:]) }
	in := `{"files":[{"path":"` + a + `","size":10,"sha256":"` + sum("first file") + `"},{"path":"` + b + `","size":0}]}`
	var stdout bytes.Buffer
	if err := run(strings.NewReader(in), &stdout, out); err != nil {
		t.Fatal(err)
	}
	var got struct{ Files []result }
	if err := json.Unmarshal(stdout.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	want := []result{{"1-a.bin", 10, sum("first file")}, {"2-b.txt", 0, sum("")}}
	if len(got.Files) != 2 || got.Files[0] != want[0] || got.Files[1] != want[1] {
		t.Fatalf("output %+v, want %+v", got.Files, want)
	}
	copied, err := os.ReadFile(filepath.Join(out, "1-a.bin"))
	if err != nil || string(copied) != "first file" {
		t.Fatalf("artifact %q %v", copied, err)
	}
}

func TestRefusesAMismatchAndAMissingPath(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "x")
	if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, in := range []string{
		`{"files":[{"path":"` + p + `","sha256":"` + strings.Repeat("0", 64) + `"}]}`,
		`{"files":[{"$file":"01JB0000000000000000000000"}]}`,
		`{"files":[]}`,
	} {
		if err := run(strings.NewReader(in), &bytes.Buffer{}, ""); err == nil {
			t.Errorf("%s accepted", in)
		}
	}
}

func TestDefinitionIsValid(t *testing.T) {
	d, err := algorithm.LoadFile("algorithm.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if d.Name != "sha256" || d.Pool != "cpu" || d.Limits.ArtifactBytes != 5<<30 {
		t.Fatalf("definition %+v", d)
	}
}
