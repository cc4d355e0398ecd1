// Package artifacts stores the files a run wrote to its $AIGW_OUTPUT_DIR: in
// the S3-compatible object store (internal/objstore, key
// artifacts/<job>/<attempt>/<name>), or, in a small deployment without one,
// in MongoDB GridFS (bucket "artifacts"). Each file is streamed once and its
// SHA-256 recorded; the total of a run's files is held to a limit (the
// worker's, or the algorithm's own limits.artifact_bytes).
//
// An object store that does not answer is retried with backoff for up to
// RetryFor, so that a short outage delays a job's end instead of failing it;
// after that Save fails with an error matching objstore.ErrUnavailable.
package artifacts

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/aigw/aigw/internal/algorithm"
	"github.com/aigw/aigw/internal/job"
	"github.com/aigw/aigw/internal/objstore"
)

// Bucket is the GridFS bucket name.
const Bucket = "artifacts"

// KeyPrefix is where a job's artifacts live in the object store; deleting
// it removes every attempt's files (retention).
func KeyPrefix(jobID string) string { return objstore.ArtifactPrefix(jobID) }

// Key is the object key of one artifact.
func Key(jobID string, attempt int, name string) string {
	return KeyPrefix(jobID) + strconv.Itoa(attempt) + "/" + name
}

// Definitions finds an algorithm's definition (algorithm.Cache), for its
// own artifact limit.
type Definitions interface {
	Get(ctx context.Context, name, version string) (*algorithm.Definition, error)
}

// Store uploads artifacts.
type Store struct {
	gridfs *mongo.GridFSBucket
	obj    *objstore.Store
	// Limit caps the total bytes of one run's files, unless the algorithm
	// sets its own (limits.artifact_bytes, found through Defs).
	Limit int64
	// Defs, when set, gives the algorithms' own limits.
	Defs Definitions
	// RetryFor bounds the retries of an object store that does not answer
	// (default 2 minutes; negative: no retry).
	RetryFor time.Duration
	// Log, when set, hears about retries.
	Log *slog.Logger
}

// New returns a Store on GridFS in db; limit caps one run's files.
func New(db *mongo.Database, limit int64) *Store {
	return &Store{gridfs: db.GridFSBucket(options.GridFSBucket().SetName(Bucket)), Limit: limit}
}

// NewObjects returns a Store in the object store; limit caps one run's files.
func NewObjects(obj *objstore.Store, limit int64) *Store {
	return &Store{obj: obj, Limit: limit}
}

// InObjectStore reports whether artifacts go to the object store.
func (s *Store) InObjectStore() bool { return s.obj != nil }

// TooLargeError says a run's files exceed the limit.
type TooLargeError struct{ Size, Limit int64 }

func (e *TooLargeError) Error() string {
	return fmt.Sprintf("artifacts total %d bytes, over the limit of %d", e.Size, e.Limit)
}

// File is a file a run wrote: its path, its name relative to the output
// directory (with slashes) and its size.
type File struct {
	Path, Name string
	Size       int64
}

// List lists every regular file under dir, with their total size.
func List(dir string) ([]File, int64, error) {
	var files []File
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
		files = append(files, File{Path: p, Name: filepath.ToSlash(rel), Size: info.Size()})
		total += info.Size()
		return nil
	})
	if err != nil {
		return nil, 0, fmt.Errorf("list artifacts: %w", err)
	}
	return files, total, nil
}

// SaveJob uploads the files under dir of job j's current attempt, held to
// the algorithm's limit when it sets one.
func (s *Store) SaveJob(ctx context.Context, dir string, j *job.Job) ([]job.Artifact, error) {
	limit := s.Limit
	if s.Defs != nil {
		if def, err := s.Defs.Get(ctx, j.Algorithm, j.Version); err == nil && def.Limits.ArtifactBytes > 0 {
			limit = def.Limits.ArtifactBytes
		}
	}
	return s.save(ctx, dir, j.ID, j.Attempt, limit)
}

// Save uploads every regular file under dir (names relative to dir, with
// slashes), after checking their total size against the limit. Nothing is
// uploaded when the limit is exceeded.
func (s *Store) Save(ctx context.Context, dir, jobID string, attempt int) ([]job.Artifact, error) {
	return s.save(ctx, dir, jobID, attempt, s.Limit)
}

func (s *Store) save(ctx context.Context, dir, jobID string, attempt int, limit int64) ([]job.Artifact, error) {
	files, total, err := List(dir)
	if err != nil {
		return nil, err
	}
	if total > limit {
		return nil, &TooLargeError{Size: total, Limit: limit}
	}
	out := make([]job.Artifact, 0, len(files))
	for _, f := range files {
		var a job.Artifact
		var err error
		if s.obj != nil {
			a, err = s.put(ctx, f, jobID, attempt)
		} else {
			a, err = s.upload(ctx, f.Path, f.Name, jobID, attempt)
		}
		if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, nil
}

// put streams one file to the object store, retrying while the store does
// not answer.
func (s *Store) put(ctx context.Context, f File, jobID string, attempt int) (job.Artifact, error) {
	key := Key(jobID, attempt, f.Name)
	retryFor := s.RetryFor
	if retryFor == 0 {
		retryFor = 2 * time.Minute
	}
	deadline := time.Now().Add(retryFor)
	backoff := 100 * time.Millisecond
	for try := 1; ; try++ {
		obj, err := s.putOnce(ctx, f, key)
		if err == nil {
			return job.Artifact{Name: f.Name, Key: key, Size: obj.Size, SHA256: obj.SHA256}, nil
		}
		if !objstore.IsUnavailable(err) || retryFor < 0 || time.Now().Add(backoff).After(deadline) {
			return job.Artifact{}, fmt.Errorf("artifact %s: %w", f.Name, err)
		}
		if s.Log != nil {
			s.Log.Warn("object store unavailable; retrying the artifact", "job_id", jobID, "artifact", f.Name, "try", try, "err", err)
		}
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return job.Artifact{}, fmt.Errorf("artifact %s: %w (last: %w)", f.Name, ctx.Err(), err)
		case <-t.C:
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

func (s *Store) putOnce(ctx context.Context, f File, key string) (objstore.Object, error) {
	fh, err := os.Open(f.Path)
	if err != nil {
		return objstore.Object{}, err
	}
	defer fh.Close()
	info, err := fh.Stat()
	if err != nil {
		return objstore.Object{}, err
	}
	return s.obj.Put(ctx, key, fh, info.Size())
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
	id, err := s.gridfs.UploadFromStream(ctx, name, io.LimitReader(f, size), options.GridFSUpload().SetMetadata(
		bson.D{{Key: "job_id", Value: jobID}, {Key: "attempt", Value: attempt}, {Key: "sha256", Value: sum}}))
	if err != nil {
		return job.Artifact{}, fmt.Errorf("upload artifact %s: %w", name, err)
	}
	return job.Artifact{Name: name, FileID: id.Hex(), Size: size, SHA256: sum}, nil
}

// OpenArtifact returns the content of a stored artifact (tests and tools).
func (s *Store) OpenArtifact(ctx context.Context, a job.Artifact) ([]byte, error) {
	if a.Key == "" {
		return s.Open(ctx, a.FileID)
	}
	if s.obj == nil {
		return nil, errors.New("artifact in the object store, but none is configured")
	}
	body, _, err := s.obj.Get(ctx, a.Key)
	if err != nil {
		return nil, err
	}
	defer body.Close()
	return io.ReadAll(body)
}

// Open returns the content of a GridFS artifact (tests and tools).
func (s *Store) Open(ctx context.Context, fileID string) ([]byte, error) {
	if s.gridfs == nil {
		return nil, errors.New("artifacts are in the object store, not GridFS")
	}
	id, err := bson.ObjectIDFromHex(fileID)
	if err != nil {
		return nil, fmt.Errorf("artifact id %q: %w", fileID, err)
	}
	st, err := s.gridfs.OpenDownloadStream(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("open artifact %s: %w", fileID, err)
	}
	defer st.Close()
	return io.ReadAll(st)
}
