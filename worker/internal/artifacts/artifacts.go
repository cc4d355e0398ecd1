// Package artifacts stores the files a run wrote to its $AIGW_OUTPUT_DIR in
// MongoDB GridFS (bucket "artifacts"), each tagged with its job and attempt.
package artifacts

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/aigw/aigw/internal/job"
)

// Bucket is the GridFS bucket name.
const Bucket = "artifacts"

// Store uploads artifacts.
type Store struct {
	bucket *mongo.GridFSBucket
	// Limit caps the total bytes of one run's files.
	Limit int64
}

// New returns a Store on db.
func New(db *mongo.Database, limit int64) *Store {
	return &Store{bucket: db.GridFSBucket(options.GridFSBucket().SetName(Bucket)), Limit: limit}
}

// TooLargeError says a run's files exceed the limit.
type TooLargeError struct{ Size, Limit int64 }

func (e *TooLargeError) Error() string {
	return fmt.Sprintf("artifacts total %d bytes, over the limit of %d", e.Size, e.Limit)
}

// Save uploads every regular file under dir (names relative to dir, with
// slashes), after checking their total size against the limit. Nothing is
// uploaded when the limit is exceeded.
func (s *Store) Save(ctx context.Context, dir, jobID string, attempt int) ([]job.Artifact, error) {
	type file struct {
		path, name string
		size       int64
	}
	var files []file
	var total int64
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		files = append(files, file{path: p, name: filepath.ToSlash(rel), size: info.Size()})
		total += info.Size()
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list artifacts: %w", err)
	}
	if total > s.Limit {
		return nil, &TooLargeError{Size: total, Limit: s.Limit}
	}
	out := make([]job.Artifact, 0, len(files))
	for _, f := range files {
		a, err := s.upload(ctx, f.path, f.name, jobID, attempt)
		if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, nil
}

func (s *Store) upload(ctx context.Context, path, name, jobID string, attempt int) (job.Artifact, error) {
	f, err := os.Open(path)
	if err != nil {
		return job.Artifact{}, fmt.Errorf("artifact %s: %w", name, err)
	}
	defer f.Close()
	h := sha256.New()
	size, err := io.Copy(h, f)
	if err != nil {
		return job.Artifact{}, fmt.Errorf("artifact %s: %w", name, err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return job.Artifact{}, fmt.Errorf("artifact %s: %w", name, err)
	}
	sum := hex.EncodeToString(h.Sum(nil))
	id, err := s.bucket.UploadFromStream(ctx, name, io.LimitReader(f, size), options.GridFSUpload().SetMetadata(
		bson.D{{Key: "job_id", Value: jobID}, {Key: "attempt", Value: attempt}, {Key: "sha256", Value: sum}}))
	if err != nil {
		return job.Artifact{}, fmt.Errorf("upload artifact %s: %w", name, err)
	}
	return job.Artifact{Name: name, FileID: id.Hex(), Size: size, SHA256: sum}, nil
}

// Open returns the content of a stored artifact (for tests and tools).
func (s *Store) Open(ctx context.Context, fileID string) ([]byte, error) {
	id, err := bson.ObjectIDFromHex(fileID)
	if err != nil {
		return nil, fmt.Errorf("artifact id %q: %w", fileID, err)
	}
	st, err := s.bucket.OpenDownloadStream(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("open artifact %s: %w", fileID, err)
	}
	defer st.Close()
	return io.ReadAll(st)
}
