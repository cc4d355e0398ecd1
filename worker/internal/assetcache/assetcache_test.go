package assetcache

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/aigw/aigw/internal/algorithm"
	"github.com/aigw/aigw/internal/registry"
	"github.com/aigw/aigw/internal/testwait"
)

// server serves files by path and counts the requests of each.
type server struct {
	*httptest.Server
	mu    sync.Mutex
	files map[string][]byte
	gets  map[string]*atomic.Int64
	gate  chan struct{} // when not nil, every GET waits for it to close
}

func newServer(t *testing.T) *server {
	s := &server{files: map[string][]byte{}, gets: map[string]*atomic.Int64{}}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		b, ok := s.files[r.URL.Path]
		n := s.gets[r.URL.Path]
		gate := s.gate
		s.mu.Unlock()
		if !ok {
			http.NotFound(w, r)
			return
		}
		n.Add(1)
		if gate != nil {
			<-gate
		}
		_, _ = w.Write(b)
	}))
	t.Cleanup(s.Close)
	return s
}

// asset serves content at path and returns its definition (sum and size
// from content unless overridden by the caller).
func (s *server) asset(path string, content []byte) algorithm.Asset {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.files[path] = content
	s.gets[path] = &atomic.Int64{}
	h := sha256.Sum256(content)
	return algorithm.Asset{Name: filepath.Base(path), URL: s.URL + path, SHA256: hex.EncodeToString(h[:]), Size: int64(len(content))}
}

func (s *server) count(path string) int64 { return s.gets[path].Load() }

func get(t *testing.T, c *Cache, a algorithm.Asset) (string, func()) {
	t.Helper()
	p, release, err := c.Get(context.Background(), a, nil)
	if err != nil {
		t.Fatalf("get %s: %v", a.Name, err)
	}
	return p, release
}

func TestMissThenHitContentAddressed(t *testing.T) {
	srv := newServer(t)
	c, err := New(t.TempDir(), 1<<20, srv.Client())
	if err != nil {
		t.Fatal(err)
	}
	a := srv.asset("/w.bin", []byte("model weights"))
	p, release := get(t, c, a)
	release()
	if p != filepath.Join(c.dir, "sha256", a.SHA256) {
		t.Fatalf("path %s", p)
	}
	b, err := os.ReadFile(p)
	if err != nil || string(b) != "model weights" {
		t.Fatalf("file %q %v", b, err)
	}
	if info, _ := os.Stat(p); info.Mode().Perm() != 0o444 {
		t.Fatalf("mode %v, want read-only", info.Mode())
	}
	// The same content under another name and URL is the same file.
	b2 := srv.asset("/copy.bin", []byte("model weights"))
	p2, release2 := get(t, c, b2)
	release2()
	if p2 != p || srv.count("/copy.bin") != 0 || srv.count("/w.bin") != 1 {
		t.Fatalf("second get: %s, downloads %d/%d", p2, srv.count("/w.bin"), srv.count("/copy.bin"))
	}
	if s := c.Stats(); s.Hits != 1 || s.Misses != 1 || s.DownloadedBytes != 13 || s.Files != 1 || s.Bytes != 13 {
		t.Fatalf("stats %+v", s)
	}
	// A new cache on the same directory keeps it.
	c2, err := New(c.dir, 1<<20, srv.Client())
	if err != nil {
		t.Fatal(err)
	}
	if _, release := get(t, c2, a); release != nil {
		release()
	}
	if srv.count("/w.bin") != 1 || c2.Stats().Hits != 1 {
		t.Fatalf("reopened cache downloaded again: %+v", c2.Stats())
	}
}

func TestConcurrentRequestsShareOneDownload(t *testing.T) {
	srv := newServer(t)
	srv.gate = make(chan struct{})
	c, err := New(t.TempDir(), 1<<20, srv.Client())
	if err != nil {
		t.Fatal(err)
	}
	a := srv.asset("/big.bin", bytes.Repeat([]byte("x"), 100_000))
	var waited atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Go(func() {
			_, release, err := c.Get(context.Background(), a, func(algorithm.Asset) { waited.Add(1) })
			if err == nil {
				release()
			}
			errs <- err
		})
	}
	// Every request is waiting (one downloads, seven wait for it) before the
	// server answers.
	testwait.Eventually(t, 10*time.Second, func() bool { return waited.Load() == 8 }, "all 8 requests waiting")
	close(srv.gate)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if n := srv.count("/big.bin"); n != 1 {
		t.Fatalf("%d downloads, want 1", n)
	}
	if s := c.Stats(); s.Misses != 1 || s.Hits != 7 || waited.Load() != 8 {
		t.Fatalf("stats %+v, %d waited", s, waited.Load())
	}
}

func TestLeastRecentlyUsedEvictedUnderBudget(t *testing.T) {
	srv := newServer(t)
	c, err := New(t.TempDir(), 25, srv.Client())
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1000, 0)
	c.now = func() time.Time { now = now.Add(time.Second); return now }
	a := srv.asset("/a", []byte("aaaaaaaaaa"))
	b := srv.asset("/b", []byte("bbbbbbbbbb"))
	d := srv.asset("/c", []byte("cccccccccc"))
	for _, x := range []algorithm.Asset{a, b, a} { // b is now the least recently used
		_, release := get(t, c, x)
		release()
	}
	_, release := get(t, c, d)
	release()
	if _, err := os.Stat(c.Path(b.SHA256)); !os.IsNotExist(err) {
		t.Fatalf("b still cached: %v", err)
	}
	for _, x := range []algorithm.Asset{a, d} {
		if _, err := os.Stat(c.Path(x.SHA256)); err != nil {
			t.Fatalf("%s evicted: %v", x.Name, err)
		}
	}
	if s := c.Stats(); s.Evictions != 1 || s.Bytes != 20 || s.Files != 2 {
		t.Fatalf("stats %+v", s)
	}
	// Files runs hold are never evicted: with a and c held, b does not fit.
	_, ra := get(t, c, a)
	_, rc := get(t, c, d)
	if _, _, err := c.Get(context.Background(), b, nil); !errors.Is(err, ErrBudget) {
		t.Fatalf("b with a and c held: %v, want ErrBudget", err)
	}
	ra()
	rc()
	if _, release, err := c.Get(context.Background(), b, nil); err != nil {
		t.Fatalf("b after a release: %v", err)
	} else {
		release()
	}
	huge := srv.asset("/huge", bytes.Repeat([]byte("h"), 26))
	if _, _, err := c.Get(context.Background(), huge, nil); !errors.Is(err, ErrBudget) {
		t.Fatalf("an asset over the whole budget: %v", err)
	}
}

func TestMismatchLeavesNoFile(t *testing.T) {
	srv := newServer(t)
	c, err := New(t.TempDir(), 1<<20, srv.Client())
	if err != nil {
		t.Fatal(err)
	}
	a := srv.asset("/w", []byte("the real weights"))
	a.SHA256 = hex.EncodeToString(make([]byte, 32))
	if _, _, err := c.Get(context.Background(), a, nil); !errors.Is(err, ErrMismatch) {
		t.Fatalf("a wrong checksum: %v", err)
	}
	short := srv.asset("/s", []byte("short"))
	short.Size = 10
	if _, _, err := c.Get(context.Background(), short, nil); !errors.Is(err, ErrMismatch) {
		t.Fatalf("a wrong size: %v", err)
	}
	assertEmpty(t, c)
	if s := c.Stats(); s.Bytes != 0 || s.Files != 0 {
		t.Fatalf("stats %+v", s)
	}
}

func assertEmpty(t *testing.T, c *Cache) {
	t.Helper()
	for _, sub := range []string{"sha256", "partial"} {
		left, _ := os.ReadDir(filepath.Join(c.dir, sub))
		if len(left) != 0 {
			t.Fatalf("%s holds %d files after a failed download", sub, len(left))
		}
	}
}

// A disk that fills up during a download is a clear error, and the partial
// file is removed, never used (a 64 KiB tmpfs; needs root to mount).
func TestDiskFullIsClearAndLeavesNoPartialFile(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting a small tmpfs needs root")
	}
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("mount tmpfs: %v %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("umount", dir).Run() })
	srv := newServer(t)
	c, err := New(dir, 1<<30, srv.Client())
	if err != nil {
		t.Fatal(err)
	}
	a := srv.asset("/big", bytes.Repeat([]byte("z"), 200_000))
	_, _, err = c.Get(context.Background(), a, nil)
	if !errors.Is(err, ErrDiskFull) {
		t.Fatalf("download onto a full disk: %v, want ErrDiskFull", err)
	}
	assertEmpty(t, c)
	// The cache still works for what fits.
	small := srv.asset("/small", []byte("fits"))
	if _, release, err := c.Get(context.Background(), small, nil); err != nil {
		t.Fatalf("a small asset after the full disk: %v", err)
	} else {
		release()
	}
}

// The metrics and the registry report carry the same counters as Stats:
// hits, misses, bytes downloaded and held, the budget and the files.
func TestMetricsAndReport(t *testing.T) {
	srv := newServer(t)
	c, err := New(t.TempDir(), 1<<20, srv.Client())
	if err != nil {
		t.Fatal(err)
	}
	a := srv.asset("/w.bin", []byte("model weights"))
	for range 3 {
		_, release := get(t, c, a)
		release()
	}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c.Collectors()...)
	want := `
# HELP aigw_worker_asset_cache_bytes Bytes of assets in the cache.
# TYPE aigw_worker_asset_cache_bytes gauge
aigw_worker_asset_cache_bytes 13
# HELP aigw_worker_asset_cache_downloaded_bytes_total Bytes of assets downloaded into the cache.
# TYPE aigw_worker_asset_cache_downloaded_bytes_total counter
aigw_worker_asset_cache_downloaded_bytes_total 13
# HELP aigw_worker_asset_cache_hits_total Asset requests served from the cache (or from another run's download).
# TYPE aigw_worker_asset_cache_hits_total counter
aigw_worker_asset_cache_hits_total 2
# HELP aigw_worker_asset_cache_misses_total Asset requests that started a download.
# TYPE aigw_worker_asset_cache_misses_total counter
aigw_worker_asset_cache_misses_total 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want),
		"aigw_worker_asset_cache_bytes", "aigw_worker_asset_cache_downloaded_bytes_total",
		"aigw_worker_asset_cache_hits_total", "aigw_worker_asset_cache_misses_total"); err != nil {
		t.Fatal(err)
	}
	r := c.Report()
	if r == nil || *r != (registry.AssetCache{Hits: 2, Misses: 1, DownloadedBytes: 13, Bytes: 13, BudgetBytes: 1 << 20, Files: 1}) {
		t.Fatalf("report %+v", r)
	}
	var none *Cache
	if none.Report() != nil {
		t.Fatal("a worker without a cache reports one")
	}
}
