package agent

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aigw/aigw/internal/algorithm"
	"github.com/aigw/aigw/internal/events"
	"github.com/aigw/aigw/internal/job"
	"github.com/aigw/aigw/internal/registry"
	"github.com/aigw/aigw/internal/testwait"
	"github.com/aigw/aigw/worker/internal/assetcache"
)

// Two jobs of an algorithm with an asset, at the same time on a worker with
// two slots: the asset is downloaded once, both runs read the same cached
// file through AIGW_ASSET_WEIGHTS, a job that waited for the download says
// so in its events, and a later job is a cache hit; the worker's registry
// entry shows the hits, misses and bytes.
func TestAssetDownloadedOnceAndShared(t *testing.T) {
	t.Parallel()
	content := "weights v1"
	var gets atomic.Int64
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		gets.Add(1)
		<-release
		_, _ = w.Write([]byte(content))
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() {
		select {
		case <-release:
		default:
			close(release)
		}
	})
	sum := sha256.Sum256([]byte(content))
	cache, err := assetcache.New(t.TempDir(), 1<<20, srv.Client())
	if err != nil {
		t.Fatal(err)
	}
	b := setup(t)
	b.algo("withasset", []string{"./asset"}, 0, func(d *algorithm.Definition) {
		d.Assets = []algorithm.Asset{{Name: "weights", URL: srv.URL + "/w.bin", SHA256: hex.EncodeToString(sum[:]), Size: int64(len(content))}}
	})
	cfg := b.config("w1", 2)
	cfg.WorkDir = runDir(t)
	startWorker(t, b, cfg, cache, nil)

	j1 := b.submit("withasset", `{}`, nil)
	j2 := b.submit("withasset", `{}`, nil)
	waiting := func(id string) bool {
		evs, err := b.ev.Read(context.Background(), id, "", 100, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range evs {
			if e.Type == events.TypeProgress && strings.Contains(string(e.Data), "waiting for asset weights") {
				return true
			}
		}
		return false
	}
	b.wait(j1, 20*time.Second, "both jobs waiting for the download", func(*job.Job) bool { return waiting(j1) && waiting(j2) })
	close(release)
	for _, id := range []string{j1, j2} {
		j := b.waitState(id, 20*time.Second, job.Succeeded)
		var out struct{ Path, Content string }
		if err := json.Unmarshal(j.Output, &out); err != nil {
			t.Fatal(err)
		}
		if out.Content != content || out.Path != cache.Path(hex.EncodeToString(sum[:])) {
			t.Fatalf("job %s saw %+v", id, out)
		}
	}
	j3 := b.submit("withasset", `{}`, nil)
	b.waitState(j3, 20*time.Second, job.Succeeded)
	if waiting(j3) {
		t.Fatal("a cached asset made the job wait")
	}
	if s := cache.Stats(); gets.Load() != 1 || s.Misses != 1 || s.Hits != 2 {
		t.Fatalf("%d downloads, stats %+v; want 1 download, 1 miss, 2 hits", gets.Load(), s)
	}
	// The worker's registry entry (GET /v1/pools) carries the cache's
	// counters from its next heartbeat on.
	want := registry.AssetCache{Hits: 2, Misses: 1, DownloadedBytes: int64(len(content)), Bytes: int64(len(content)), BudgetBytes: 1 << 20, Files: 1}
	var got *registry.AssetCache
	testwait.Eventually(t, 5*time.Second, func() bool {
		ws, err := b.reg.Workers(context.Background(), b.pool)
		if err != nil || len(ws) != 1 {
			return false
		}
		got = ws[0].AssetCache
		return got != nil && *got == want
	}, "the registry entry to show the cache %+v", want)
}

// An asset that is not what its definition says fails the job with
// asset_error, not retried.
func TestAssetMismatchFails(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("tampered")) }))
	t.Cleanup(srv.Close)
	cache, err := assetcache.New(t.TempDir(), 1<<20, srv.Client())
	if err != nil {
		t.Fatal(err)
	}
	b := setup(t)
	b.algo("badasset", []string{"./asset"}, 2, func(d *algorithm.Definition) {
		d.Assets = []algorithm.Asset{{Name: "weights", URL: srv.URL + "/w.bin", SHA256: strings.Repeat("0", 64), Size: 8}}
	})
	cfg := b.config("w1", 1)
	cfg.WorkDir = runDir(t)
	startWorker(t, b, cfg, cache, nil)
	id := b.submit("badasset", `{}`, func(j *job.Job) { j.MaxRetries = 2 })
	j := b.waitState(id, 20*time.Second, job.Failed)
	if j.Error == nil || j.Error.Code != job.CodeAsset || j.Attempt != 1 {
		t.Fatalf("%+v %+v", j.Error, j)
	}
}
