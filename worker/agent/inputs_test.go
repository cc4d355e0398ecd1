package agent

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
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aigw/aigw/internal/egress"
	"github.com/aigw/aigw/internal/job"
	"github.com/aigw/aigw/internal/objstore"
	"github.com/aigw/aigw/internal/objstore/objstoretest"
	"github.com/aigw/aigw/internal/testlog"
	"github.com/aigw/aigw/internal/uploads"
	"github.com/aigw/aigw/worker/internal/artifacts"
	"github.com/aigw/aigw/worker/internal/assetcache"
	"github.com/aigw/aigw/worker/internal/config"
	"github.com/aigw/aigw/worker/internal/inputs"
	"github.com/aigw/aigw/worker/internal/metrics"
)

var (
	sha256Once sync.Once
	sha256Bin  string
)

// sha256BinDir is a bin directory holding the sha256 reference algorithm.
func sha256BinDir(t *testing.T) string {
	t.Helper()
	sha256Once.Do(func() {
		dir, err := os.MkdirTemp(filepath.Dir(binDir), "aigw-sha256-bin-")
		if err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command("go", "build", "-o", filepath.Join(dir, "aigw-sha256"), "github.com/aigw/aigw/algorithms/sha256").CombinedOutput()
		if err != nil {
			t.Fatalf("build aigw-sha256: %v\n%s", err, out)
		}
		_ = os.Chmod(dir, 0o755)
		sha256Bin = dir
	})
	if sha256Bin == "" {
		t.Fatal("aigw-sha256 was not built")
	}
	return sha256Bin
}

func hexSum(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

// dataWorker is a bundle with a worker that keeps artifacts in a bucket of
// the test's own and fetches input files from it and through client
// (default: the egress guard's, public addresses only); it returns the
// worker's work directory too.
func dataWorker(t *testing.T, client *http.Client, cache ...*assetcache.Cache) (*bundle, *objstore.Store, string) {
	b := setup(t)
	obj, _ := objstoretest.Store(t)
	b.arts = artifacts.NewObjects(obj, 1<<20)
	cfg := b.config("w1", 1)
	cfg.BinDir = sha256BinDir(t)
	cfg.WorkDir = runDir(t)
	if client == nil {
		client = egress.NewGuard(nil).Client()
	}
	b.algo("sha256", []string{"aigw-sha256"}, 2, nil)
	startWorker(t, b, cfg, first(cache), &inputs.Fetcher{Store: obj, HTTP: client})
	return b, obj, cfg.WorkDir
}

// An uploaded file referenced by the input is fetched before the run, the
// algorithm reads it from the path it is given, and its copy becomes the
// job's artifact in the object store.
func TestInputFileFetchedBeforeTheRun(t *testing.T) {
	t.Parallel()
	b, obj, work := dataWorker(t, nil)
	data := bytes.Repeat([]byte("0123456789abcdef"), 40_000) // 640 KB
	id := job.NewID()
	if _, err := obj.Put(context.Background(), uploads.Key("t1", id), bytes.NewReader(data), int64(len(data))); err != nil {
		t.Fatal(err)
	}
	jid := b.submit("sha256", `{"files":[{"$file":"`+id+`","size":`+itoa(len(data))+`,"sha256":"`+hexSum(data)+`"}]}`, nil)
	j := b.waitState(jid, 30*time.Second, job.Succeeded)
	var out struct {
		Files []struct {
			Name   string `json:"name"`
			Size   int64  `json:"size"`
			SHA256 string `json:"sha256"`
		} `json:"files"`
	}
	if err := json.Unmarshal(j.Output, &out); err != nil {
		t.Fatal(err)
	}
	if len(out.Files) != 1 || out.Files[0].Size != int64(len(data)) || out.Files[0].SHA256 != hexSum(data) || out.Files[0].Name != "1-"+id {
		t.Fatalf("output %s", j.Output)
	}
	if len(j.Artifacts) != 1 || j.Artifacts[0].SHA256 != hexSum(data) || j.Artifacts[0].Key == "" {
		t.Fatalf("artifacts %+v", j.Artifacts)
	}
	body, _, err := obj.Get(context.Background(), j.Artifacts[0].Key)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(body)
	body.Close()
	if !bytes.Equal(got, data) {
		t.Fatalf("artifact differs: %d bytes", len(got))
	}
	// The fetched files are gone once the attempt ends.
	left, _ := filepath.Glob(filepath.Join(work, "aigw-inputs", "*"))
	if len(left) != 0 {
		t.Fatalf("input files left behind: %v", left)
	}
}

// A file whose checksum is not its reference's fails the job with
// input_error in its first attempt, not retried, and the run never starts.
func TestInputChecksumMismatchFailsWithoutRetry(t *testing.T) {
	t.Parallel()
	b, obj, _ := dataWorker(t, nil)
	data := []byte("the real content")
	id := job.NewID()
	if _, err := obj.Put(context.Background(), uploads.Key("t1", id), bytes.NewReader(data), int64(len(data))); err != nil {
		t.Fatal(err)
	}
	for _, ref := range []string{
		`{"$file":"` + id + `","size":` + itoa(len(data)) + `,"sha256":"` + strings.Repeat("0", 64) + `"}`,
		`{"$file":"` + id + `","size":` + itoa(len(data)+1) + `}`,
		`{"$file":"` + job.NewID() + `"}`, // never uploaded
	} {
		jid := b.submit("sha256", `{"files":[`+ref+`]}`, func(j *job.Job) { j.MaxRetries = 2 })
		j := b.waitState(jid, 30*time.Second, job.Failed)
		if j.Error == nil || j.Error.Code != job.CodeInput || j.Attempt != 1 || len(j.Artifacts) != 0 {
			t.Fatalf("%s: %+v %+v, want input_error in attempt 1", ref, j.Error, j)
		}
	}
}

// A URL to a private address is refused by the worker too (the router
// refuses it at submit; a record written otherwise is not trusted).
func TestInputURLToAPrivateAddressFails(t *testing.T) {
	t.Parallel()
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "secret") }))
	t.Cleanup(srv.Close)
	b, _, _ := dataWorker(t, nil)
	jid := b.submit("sha256", `{"files":[{"$file":"`+srv.URL+`/x"}]}`, func(j *job.Job) { j.MaxRetries = 2 })
	j := b.waitState(jid, 30*time.Second, job.Failed)
	if j.Error == nil || j.Error.Code != job.CodeInput || j.Attempt != 1 || !strings.Contains(j.Error.Message, "not allowed") {
		t.Fatalf("%+v", j.Error)
	}
}

// A URL the operator allows is fetched (https, checked against its size and
// SHA-256).
func TestInputURLFetched(t *testing.T) {
	t.Parallel()
	data := []byte("a public model file")
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write(data) }))
	t.Cleanup(srv.Close)
	client := egress.NewGuard([]netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}).Client()
	client.Transport.(*http.Transport).TLSClientConfig = srv.Client().Transport.(*http.Transport).TLSClientConfig.Clone()
	b, _, _ := dataWorker(t, client)
	jid := b.submit("sha256", `{"files":[{"$file":"`+srv.URL+`/models/m.bin","sha256":"`+hexSum(data)+`"}]}`, nil)
	j := b.waitState(jid, 30*time.Second, job.Succeeded)
	if !strings.Contains(string(j.Output), hexSum(data)) || !strings.Contains(string(j.Output), `"1-m.bin"`) {
		t.Fatalf("output %s", j.Output)
	}
}

// startWorker runs an agent of b with cfg, an asset cache and an input
// fetcher (either may be nil) until the test ends.
func startWorker(t *testing.T, b *bundle, cfg config.Config, cache *assetcache.Cache, fetcher *inputs.Fetcher) {
	t.Helper()
	a, err := New(cfg, Deps{Redis: b.rdb, Queue: b.q, Jobs: b.jobs, Algorithms: b.algos, Events: b.ev,
		Registry: b.reg, Artifacts: b.arts, Inputs: fetcher, Assets: cache,
		Metrics: metrics.New(), Log: testlog.AtLevel(t, slog.LevelInfo)}, nil, "test")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("worker: %v", err)
		}
	})
}

func first(c []*assetcache.Cache) *assetcache.Cache {
	if len(c) == 0 {
		return nil
	}
	return c[0]
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }
