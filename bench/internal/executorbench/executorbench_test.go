package executorbench

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/aigw/aigw/internal/algorithm"
	"github.com/aigw/aigw/internal/executorapi"
	"github.com/aigw/aigw/internal/inputfiles"
	"github.com/aigw/aigw/internal/job"
	"github.com/aigw/aigw/internal/objstore"
	"github.com/aigw/aigw/internal/objstore/objstoretest"
	"github.com/aigw/aigw/internal/queue"
	"github.com/aigw/aigw/internal/testenv"
	"github.com/aigw/aigw/internal/testlog"
	"github.com/aigw/aigw/internal/testwait"
	"github.com/aigw/aigw/internal/uploads"
	"github.com/aigw/aigw/worker/agent"
)

func hexSum(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

// openStack opens the executors stack on the test servers with an object
// store, and returns it with the store and a pool name of the test's own.
func openStack(ctx context.Context, t *testing.T) (*Stack, *objstore.Store, string) {
	t.Helper()
	obj, _ := objstoretest.Store(t)
	name := testenv.UniqueName(t, 40)
	s, err := Open(ctx, testenv.MongoDB(t).Name()+"x", StackConfig{MongoURI: testenv.MongoURI(t), RedisAddrs: testenv.RedisAddrs(t),
		Objects: obj, Log: testlog.AtLevel(t, slog.LevelInfo)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Purge(name); s.Close() })
	return s, obj, name
}

// runJob records j, queues it and returns its record once it has ended.
func runJob(ctx context.Context, t *testing.T, s *Stack, j job.Job) *job.Job {
	t.Helper()
	created, _, err := s.Jobs.Create(ctx, j)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Queue.EnqueueBatch(ctx, []queue.Message{queue.MessageOf(created)}); err != nil {
		t.Fatal(err)
	}
	var rec *job.Job
	testwait.Eventually(t, 60*time.Second, func() bool {
		rec, err = s.Jobs.GetByID(ctx, created.ID)
		return err == nil && rec.State.Terminal()
	}, "job %s to end", created.ID)
	return rec
}

// TestJoinedWorkerRunsSha256WithAnUploadedFile: a joined worker (the
// executor API its only address, no object store credential) runs the
// sha256 reference algorithm on a job whose input refers to an upload: the
// file comes through the executor API, the algorithm hashes it, and its
// copy becomes the job's artifact in the object store; the executor reads
// only uploads its held job refers to. The algorithm's asset comes through
// the worker's asset cache.
func TestJoinedWorkerRunsSha256WithAnUploadedFile(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s, obj, name := openStack(ctx, t)

	bin := t.TempDir()
	if out, err := exec.Command("go", "build", "-o", filepath.Join(bin, "aigw-sha256"), "github.com/aigw/aigw/algorithms/sha256").CombinedOutput(); err != nil {
		t.Fatalf("build aigw-sha256: %v\n%s", err, out)
	}
	// The algorithm has an asset: the joined worker's cache downloads it
	// before the run, as an agent's does.
	weights := []byte("weights of the joined worker's run")
	assets := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write(weights) }))
	t.Cleanup(assets.Close)
	cache, err := agent.NewAssetCache(t.TempDir(), 1<<20, &http.Client{})
	if err != nil {
		t.Fatal(err)
	}
	retries := 1
	if _, _, err := s.Algos.Put(ctx, algorithm.Definition{Name: "sha256", Version: "1.0.0", Pool: name,
		Runtime: algorithm.Runtime{Type: algorithm.Exec, Command: []string{"aigw-sha256"}}, TimeoutMS: 60000, MaxRetries: &retries,
		Assets: []algorithm.Asset{{Name: "weights", URL: assets.URL + "/weights.bin", SHA256: hexSum(weights), Size: int64(len(weights))}}}); err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()
	if _, err := s.Joined(ctx, name, "edge-1", WorkerConfig("", "", 1, bin, work), agent.JoinDeps{Assets: cache}); err != nil {
		t.Fatal(err)
	}

	data := bytes.Repeat([]byte("0123456789abcdef"), 40_000) // 640 KB
	up := job.NewID()
	if _, err := obj.Put(ctx, uploads.Key("acme", up), bytes.NewReader(data), int64(len(data))); err != nil {
		t.Fatal(err)
	}
	// The input as the router stores it: the reference resolved to its
	// canonical form.
	in, _ := json.Marshal(map[string]any{"files": []any{inputfiles.Canonical(up, int64(len(data)), hexSum(data))}})
	rec := runJob(ctx, t, s, job.Job{Tenant: "acme", Algorithm: "sha256", Version: "1.0.0", Pool: name, Input: in})
	if rec.State != job.Succeeded || rec.Attempt != 1 {
		t.Fatalf("job %s attempt %d: %+v", rec.State, rec.Attempt, rec.Error)
	}
	var out struct {
		Files []struct {
			Name   string `json:"name"`
			Size   int64  `json:"size"`
			SHA256 string `json:"sha256"`
		} `json:"files"`
	}
	if err := json.Unmarshal(rec.Output, &out); err != nil {
		t.Fatal(err)
	}
	if len(out.Files) != 1 || out.Files[0].Size != int64(len(data)) || out.Files[0].SHA256 != hexSum(data) {
		t.Fatalf("output %s", rec.Output)
	}
	if len(rec.Artifacts) != 1 || rec.Artifacts[0].SHA256 != hexSum(data) || rec.Artifacts[0].Key == "" {
		t.Fatalf("artifacts %+v", rec.Artifacts)
	}
	body, _, err := obj.Get(ctx, rec.Artifacts[0].Key)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(body)
	body.Close()
	if !bytes.Equal(got, data) {
		t.Fatalf("artifact differs: %d bytes", len(got))
	}
	if left, _ := filepath.Glob(filepath.Join(work, "aigw-inputs", "*")); len(left) != 0 {
		t.Fatalf("input files left behind: %v", left)
	}
	if st := cache.Stats(); st.Misses != 1 || st.DownloadedBytes != int64(len(weights)) || st.Files != 1 {
		t.Fatalf("asset cache %+v: want the asset downloaded once", st)
	}

	// An executor reads only uploads of a job it holds, and only those the
	// job's input names (a pool of its own, with no worker to race it).
	pool2 := name + "b"
	t.Cleanup(func() { s.Purge(pool2) })
	if _, _, err := s.Algos.Put(ctx, algorithm.Definition{Name: "sha256b", Version: "1.0.0", Pool: pool2,
		Runtime: algorithm.Runtime{Type: algorithm.Exec, Command: []string{"aigw-sha256"}}, TimeoutMS: 60000, MaxRetries: &retries}); err != nil {
		t.Fatal(err)
	}
	cr, err := s.Admin.Create(ctx, pool2, "edge-2")
	if err != nil {
		t.Fatal(err)
	}
	c := executorapi.NewClient(s.URL, cr.Token, nil)
	if _, err := c.Register(ctx, executorapi.Register{Version: "test", Slots: 1}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.File(ctx, rec.ID, 1, up); executorapi.StatusOf(err) != http.StatusForbidden {
		t.Fatalf("a file of another pool's job: %v, want 403", err)
	}
	other := job.NewID()
	secret := []byte("a file the job does not name")
	if _, err := obj.Put(ctx, uploads.Key("acme", other), bytes.NewReader(secret), int64(len(secret))); err != nil {
		t.Fatal(err)
	}
	j2, _, err := s.Jobs.Create(ctx, job.Job{Tenant: "acme", Algorithm: "sha256b", Version: "1.0.0", Pool: pool2, Input: in})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.File(ctx, j2.ID, 1, up); executorapi.StatusOf(err) != http.StatusConflict {
		t.Fatalf("a file of a job not held: %v, want 409", err)
	}
	if _, err := s.Queue.EnqueueBatch(ctx, []queue.Message{queue.MessageOf(j2)}); err != nil {
		t.Fatal(err)
	}
	js, err := c.Claim(ctx, executorapi.ClaimRequest{Max: 1, WaitMS: 5000})
	if err != nil || len(js) != 1 || js[0].ID != j2.ID {
		t.Fatalf("claim: %+v %v", js, err)
	}
	if _, _, err := c.File(ctx, j2.ID, js[0].Attempt, other); executorapi.StatusOf(err) != http.StatusForbidden {
		t.Fatalf("an upload the job does not name: %v, want 403", err)
	}
	rc, n, err := c.File(ctx, j2.ID, js[0].Attempt, up)
	if err != nil {
		t.Fatal(err)
	}
	got, _ = io.ReadAll(rc)
	rc.Close()
	if n != int64(len(data)) || !bytes.Equal(got, data) {
		t.Fatalf("held job's upload: %d bytes (said %d)", len(got), n)
	}
	if _, err := c.Finish(ctx, j2.ID, executorapi.Finish{Attempt: js[0].Attempt, Outcome: executorapi.OutcomeSucceeded, Output: json.RawMessage(`{}`)}); err != nil {
		t.Fatal(err)
	}
}

// TestJoinedWorkerKeepsArtifactsInSubfolders: files a run writes in
// subfolders of its output directory become artifacts named by their
// relative path, as an agent's do.
func TestJoinedWorkerKeepsArtifactsInSubfolders(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s, obj, name := openStack(ctx, t)
	bin := t.TempDir()
	script, err := os.ReadFile(filepath.Join("..", "..", "..", "worker", "agent", "testdata", "artifact"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bin, "artifact"), script, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Algos.Put(ctx, algorithm.Definition{Name: "artifact", Version: "1.0.0", Pool: name,
		Runtime: algorithm.Runtime{Type: algorithm.Exec, Command: []string{"artifact"}}, TimeoutMS: 60000}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Joined(ctx, name, "edge-1", WorkerConfig("", "", 1, bin, t.TempDir()), agent.JoinDeps{}); err != nil {
		t.Fatal(err)
	}
	rec := runJob(ctx, t, s, job.Job{Tenant: "acme", Algorithm: "artifact", Version: "1.0.0", Pool: name, Input: json.RawMessage(`{}`)})
	if rec.State != job.Succeeded {
		t.Fatalf("job %s: %+v", rec.State, rec.Error)
	}
	want := map[string]string{"result.txt": "hello artifact\n", "sub/data.bin": "abc"}
	if len(rec.Artifacts) != len(want) {
		t.Fatalf("artifacts %+v", rec.Artifacts)
	}
	for _, a := range rec.Artifacts {
		body, _, err := obj.Get(ctx, a.Key)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(body)
		body.Close()
		if string(got) != want[a.Name] || a.SHA256 != hexSum(got) {
			t.Errorf("artifact %+v: %q", a, got)
		}
	}
}
