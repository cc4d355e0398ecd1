package artifacts

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/aigw/aigw/internal/algorithm"
	"github.com/aigw/aigw/internal/job"
	"github.com/aigw/aigw/internal/objstore"
	"github.com/aigw/aigw/internal/objstore/objstoretest"
	"github.com/aigw/aigw/internal/testwait"
)

// Every file goes to artifacts/<job>/<attempt>/<name> with its size and
// SHA-256, and reads back as written.
func TestObjectStoreStoresEveryFile(t *testing.T) {
	t.Parallel()
	obj, _ := objstoretest.Store(t)
	s := NewObjects(obj, 1<<20)
	dir := t.TempDir()
	files := map[string]string{"result.json": `{"ok":true}`, "plots/loss.csv": "step,loss\n1,0.5\n", "empty.txt": ""}
	for name, content := range files {
		write(t, dir, name, content)
	}
	arts, err := s.Save(context.Background(), dir, "job1", 2)
	if err != nil {
		t.Fatal(err)
	}
	if len(arts) != 3 {
		t.Fatalf("stored %+v", arts)
	}
	for _, a := range arts {
		sum := sha256.Sum256([]byte(files[a.Name]))
		if a.Key != "artifacts/job1/2/"+a.Name || a.FileID != "" || a.Size != int64(len(files[a.Name])) || a.SHA256 != hex.EncodeToString(sum[:]) {
			t.Errorf("%s: %+v", a.Name, a)
		}
		got, err := s.OpenArtifact(context.Background(), a)
		if err != nil || string(got) != files[a.Name] {
			t.Errorf("%s reads back %q, %v", a.Name, got, err)
		}
	}
	if n, err := obj.DeletePrefix(context.Background(), KeyPrefix("job1")); err != nil || n != 3 {
		t.Fatalf("the job's prefix held %d objects (%v), want 3", n, err)
	}
}

type defs map[string]*algorithm.Definition

func (d defs) Get(_ context.Context, name, _ string) (*algorithm.Definition, error) {
	if def, ok := d[name]; ok {
		return def, nil
	}
	return nil, algorithm.ErrNotFound
}

// An algorithm's limits.artifact_bytes wins over the worker's limit, both
// ways; an algorithm without one gets the worker's.
func TestAlgorithmLimit(t *testing.T) {
	t.Parallel()
	obj, _ := objstoretest.Store(t)
	s := NewObjects(obj, 10)
	s.Defs = defs{
		"small": {Name: "small", Limits: algorithm.Limits{ArtifactBytes: 4}},
		"big":   {Name: "big", Limits: algorithm.Limits{ArtifactBytes: 100}},
		"plain": {Name: "plain"},
	}
	dir := t.TempDir()
	write(t, dir, "a.bin", "123456") // 6 bytes
	var tooLarge *TooLargeError
	if _, err := s.SaveJob(context.Background(), dir, &job.Job{ID: "j1", Algorithm: "small", Attempt: 1}); !errors.As(err, &tooLarge) || tooLarge.Limit != 4 {
		t.Fatalf("6 bytes under an algorithm limit of 4: %v", err)
	}
	if _, err := s.SaveJob(context.Background(), dir, &job.Job{ID: "j2", Algorithm: "plain", Attempt: 1}); err != nil {
		t.Fatalf("6 bytes under the worker's 10: %v", err)
	}
	write(t, dir, "b.bin", "1234567890") // 16 in all
	if _, err := s.SaveJob(context.Background(), dir, &job.Job{ID: "j3", Algorithm: "plain", Attempt: 1}); !errors.As(err, &tooLarge) || tooLarge.Limit != 10 {
		t.Fatalf("16 bytes under the worker's 10: %v", err)
	}
	if arts, err := s.SaveJob(context.Background(), dir, &job.Job{ID: "j4", Algorithm: "big", Attempt: 1}); err != nil || len(arts) != 2 {
		t.Fatalf("16 bytes under an algorithm limit of 100: %v %v", arts, err)
	}
}

// A store that is down while a run's files are stored is retried until it
// answers: the artifacts are stored once it does, not lost.
func TestStoreDownDuringUploadIsRetried(t *testing.T) {
	t.Parallel()
	direct, cfg := objstoretest.Store(t)
	f, cfg := objstoretest.Flaky(t, cfg)
	obj, err := objstore.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	s := NewObjects(obj, 1<<20)
	s.RetryFor = time.Minute
	dir := t.TempDir()
	write(t, dir, "out.txt", "kept through an outage")

	type result struct {
		arts []job.Artifact
		err  error
	}
	done := make(chan result, 1)
	go func() {
		arts, err := s.Save(context.Background(), dir, "job9", 1)
		done <- result{arts, err}
	}()
	testwait.Eventually(t, 20*time.Second, func() bool { return f.Drops() >= 3 }, "three dropped tries")
	f.SetDown(false)
	r := testwait.Receive(t, done, 30*time.Second, "the save after the store came back")
	if r.err != nil || len(r.arts) != 1 {
		t.Fatalf("save across an outage: %+v %v", r.arts, r.err)
	}
	body, _, err := direct.Get(context.Background(), "artifacts/job9/1/out.txt")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(body)
	body.Close()
	if string(b) != "kept through an outage" {
		t.Fatalf("stored %q", b)
	}
}

// A store that stays down past RetryFor fails the save as an outage (the
// agent then fails the attempt retryably).
func TestStoreDownTooLongIsAnOutage(t *testing.T) {
	t.Parallel()
	_, cfg := objstoretest.Store(t)
	f, cfg := objstoretest.Flaky(t, cfg)
	obj, err := objstore.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	s := NewObjects(obj, 1<<20)
	s.RetryFor = 500 * time.Millisecond
	dir := t.TempDir()
	write(t, dir, "out.txt", "x")
	_, err = s.Save(context.Background(), dir, "job10", 1)
	if !objstore.IsUnavailable(err) || f.Drops() < 2 {
		t.Fatalf("save to a store down for good: %v after %d tries; want an outage after retries", err, f.Drops())
	}
}
