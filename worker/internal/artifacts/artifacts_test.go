package artifacts

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/aigw/aigw/internal/testenv"
)

func write(t *testing.T, dir, name, content string) {
	t.Helper()
	p := filepath.Join(dir, filepath.FromSlash(name))
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// Every regular file under the directory is stored, named by its slash path,
// with its size and SHA-256, and reads back as written.
func TestSaveStoresEveryFile(t *testing.T) {
	t.Parallel()
	s := New(testenv.MongoDB(t), 1<<20)
	dir := t.TempDir()
	files := map[string]string{"result.json": `{"ok":true}`, "plots/loss.csv": "step,loss\n1,0.5\n", "empty.txt": ""}
	for name, content := range files {
		write(t, dir, name, content)
	}
	if err := os.Symlink(filepath.Join(dir, "result.json"), filepath.Join(dir, "link.json")); err != nil {
		t.Fatal(err)
	}
	arts, err := s.Save(context.Background(), dir, "job1", 2)
	if err != nil {
		t.Fatal(err)
	}
	names := make([]string, 0, len(arts))
	for _, a := range arts {
		names = append(names, a.Name)
		sum := sha256.Sum256([]byte(files[a.Name]))
		if a.Size != int64(len(files[a.Name])) || a.SHA256 != hex.EncodeToString(sum[:]) || a.FileID == "" {
			t.Errorf("%s: %+v", a.Name, a)
		}
		got, err := s.Open(context.Background(), a.FileID)
		if err != nil || string(got) != files[a.Name] {
			t.Errorf("%s reads back %q, %v", a.Name, got, err)
		}
	}
	slices.Sort(names)
	if strings.Join(names, " ") != "empty.txt plots/loss.csv result.json" {
		t.Fatalf("stored %v (a symlink is not a regular file)", names)
	}
}

// Over the limit nothing is stored and the error says by how much; an empty
// directory stores nothing.
func TestSaveLimitAndEmpty(t *testing.T) {
	t.Parallel()
	db := testenv.MongoDB(t)
	s := New(db, 10)
	dir := t.TempDir()
	if arts, err := s.Save(context.Background(), dir, "job1", 1); err != nil || len(arts) != 0 {
		t.Fatalf("empty directory: %v %v", arts, err)
	}
	write(t, dir, "a.bin", "123456")
	write(t, dir, "b.bin", "789012")
	arts, err := s.Save(context.Background(), dir, "job1", 1)
	var tooLarge *TooLargeError
	if !errors.As(err, &tooLarge) || tooLarge.Size != 12 || tooLarge.Limit != 10 || arts != nil {
		t.Fatalf("over the limit: %v %v", arts, err)
	}
	n, err := db.Collection(Bucket+".files").CountDocuments(context.Background(), bson.D{})
	if err != nil || n != 0 {
		t.Fatalf("%d files stored over the limit (%v)", n, err)
	}
	if _, err := s.Save(context.Background(), filepath.Join(dir, "missing"), "job1", 1); err == nil {
		t.Fatal("a missing directory saved without an error")
	}
}
