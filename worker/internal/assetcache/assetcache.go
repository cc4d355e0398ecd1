// Package assetcache is a worker's cache of algorithm assets (model
// weights, datasets): content-addressed files under one directory
// (<dir>/sha256/<hex>), each downloaded once, checked for size and SHA-256
// before it is used, and shared read-only with every run that needs it.
// Concurrent requests for the same asset share one download. Files no run
// holds are evicted, least recently used first, to keep the cache under its
// byte budget (AIGW_CACHE_BYTES). A download that fails (a disk that is full,
// a checksum that differs) leaves no file behind and is never used.
package assetcache

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/aigw/aigw/internal/algorithm"
	"github.com/aigw/aigw/internal/registry"
)

// ErrBudget says an asset does not fit in the cache's byte budget, even
// with every file no run holds evicted.
var ErrBudget = errors.New("asset cache budget exceeded")

// ErrDiskFull says the cache's disk had no room for a download.
var ErrDiskFull = errors.New("asset cache disk is full")

// ErrMismatch says a download is not the size or SHA-256 its definition
// names.
var ErrMismatch = errors.New("asset does not match its size and sha256")

// Cache is the asset cache. Safe for concurrent use.
type Cache struct {
	dir    string
	budget int64
	http   *http.Client
	now    func() time.Time

	mu       sync.Mutex
	entries  map[string]*entry // by SHA-256
	inflight map[string]*call
	used     int64

	hits, misses, downloaded, evicted atomic.Int64
}

type entry struct {
	size     int64
	lastUsed time.Time
	refs     int
}

type call struct {
	done chan struct{}
	err  error
}

// Stats is the cache's state, for /v1/pools and tests.
type Stats struct {
	Hits, Misses, DownloadedBytes, Evictions int64
	Bytes, Budget                            int64
	Files                                    int
}

// New opens the cache in dir with a byte budget, keeping the files already
// there (their names are their SHA-256; partial downloads are removed).
// client downloads the assets.
func New(dir string, budget int64, client *http.Client) (*Cache, error) {
	if budget <= 0 {
		return nil, fmt.Errorf("asset cache budget %d: want a positive number of bytes", budget)
	}
	c := &Cache{dir: dir, budget: budget, http: client, now: time.Now,
		entries: map[string]*entry{}, inflight: map[string]*call{}}
	if err := os.MkdirAll(filepath.Join(dir, "sha256"), 0o755); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Join(dir, "partial"), 0o700); err != nil {
		return nil, err
	}
	_ = os.Chmod(dir, 0o755)
	partials, _ := filepath.Glob(filepath.Join(dir, "partial", "*"))
	for _, p := range partials {
		_ = os.Remove(p)
	}
	files, err := os.ReadDir(filepath.Join(dir, "sha256"))
	if err != nil {
		return nil, err
	}
	for _, f := range files {
		info, err := f.Info()
		if err != nil || !info.Mode().IsRegular() || len(f.Name()) != 64 {
			continue
		}
		c.entries[f.Name()] = &entry{size: info.Size(), lastUsed: info.ModTime()}
		c.used += info.Size()
	}
	return c, nil
}

// Collectors are the cache's Prometheus metrics.
func (c *Cache) Collectors() []prometheus.Collector {
	count := func(name, help string, v *atomic.Int64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, func() float64 { return float64(v.Load()) })
	}
	gauge := func(name, help string, f func(Stats) float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, func() float64 { return f(c.Stats()) })
	}
	return []prometheus.Collector{
		count("aigw_worker_asset_cache_hits_total", "Asset requests served from the cache (or from another run's download).", &c.hits),
		count("aigw_worker_asset_cache_misses_total", "Asset requests that started a download.", &c.misses),
		count("aigw_worker_asset_cache_downloaded_bytes_total", "Bytes of assets downloaded into the cache.", &c.downloaded),
		count("aigw_worker_asset_cache_evictions_total", "Assets evicted to keep the cache under its budget.", &c.evicted),
		gauge("aigw_worker_asset_cache_bytes", "Bytes of assets in the cache.", func(s Stats) float64 { return float64(s.Bytes) }),
		gauge("aigw_worker_asset_cache_budget_bytes", "The cache's byte budget (AIGW_CACHE_BYTES).", func(s Stats) float64 { return float64(s.Budget) }),
		gauge("aigw_worker_asset_cache_files", "Assets in the cache.", func(s Stats) float64 { return float64(s.Files) }),
	}
}

// Stats returns the cache's counters and size.
func (c *Cache) Stats() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return Stats{Hits: c.hits.Load(), Misses: c.misses.Load(), DownloadedBytes: c.downloaded.Load(),
		Evictions: c.evicted.Load(), Bytes: c.used, Budget: c.budget, Files: len(c.entries)}
}

// Report is the cache's state as the worker's registry entry carries it
// (GET /v1/pools). A nil cache reports nil.
func (c *Cache) Report() *registry.AssetCache {
	if c == nil {
		return nil
	}
	s := c.Stats()
	return &registry.AssetCache{Hits: s.Hits, Misses: s.Misses, DownloadedBytes: s.DownloadedBytes,
		Evictions: s.Evictions, Bytes: s.Bytes, BudgetBytes: s.Budget, Files: s.Files}
}

// Path is where an asset's file is (whether or not it is there).
func (c *Cache) Path(sum string) string { return filepath.Join(c.dir, "sha256", sum) }

// Get returns the path of asset a's file, downloading it first unless the
// cache holds it, and a release the caller calls once the run no longer
// needs it (until then it is never evicted). waiting, when not nil, is
// called once before Get waits for a download (its own or another run's).
func (c *Cache) Get(ctx context.Context, a algorithm.Asset, waiting func(a algorithm.Asset)) (string, func(), error) {
	for {
		c.mu.Lock()
		if e, ok := c.entries[a.SHA256]; ok {
			e.refs++
			e.lastUsed = c.now()
			c.mu.Unlock()
			c.hits.Add(1)
			return c.Path(a.SHA256), c.releaser(a.SHA256), nil
		}
		cl, shared := c.inflight[a.SHA256]
		if !shared {
			if err := c.reserve(a.Size); err != nil {
				c.mu.Unlock()
				return "", nil, fmt.Errorf("asset %s (%d bytes): %w", a.Name, a.Size, err)
			}
			cl = &call{done: make(chan struct{})}
			c.inflight[a.SHA256] = cl
		}
		c.mu.Unlock()
		if waiting != nil {
			waiting(a)
			waiting = nil
		}
		if shared {
			select {
			case <-cl.done:
			case <-ctx.Done():
				return "", nil, ctx.Err()
			}
			if cl.err != nil {
				return "", nil, cl.err
			}
			continue // now an entry: take it as a hit
		}
		c.misses.Add(1)
		err := c.download(ctx, a)
		c.mu.Lock()
		delete(c.inflight, a.SHA256)
		if err != nil {
			c.used -= a.Size // the reservation
		} else {
			c.entries[a.SHA256] = &entry{size: a.Size, lastUsed: c.now(), refs: 1}
		}
		cl.err = err
		close(cl.done)
		c.mu.Unlock()
		if err != nil {
			return "", nil, err
		}
		return c.Path(a.SHA256), c.releaser(a.SHA256), nil
	}
}

func (c *Cache) releaser(sum string) func() {
	var once sync.Once
	return func() {
		once.Do(func() {
			c.mu.Lock()
			defer c.mu.Unlock()
			if e, ok := c.entries[sum]; ok && e.refs > 0 {
				e.refs--
				e.lastUsed = c.now()
			}
		})
	}
}

// reserve makes room for size bytes, evicting files no run holds, least
// recently used first, and counts them as used. c.mu is held.
func (c *Cache) reserve(size int64) error {
	if size > c.budget {
		return ErrBudget
	}
	for c.used+size > c.budget {
		var victim string
		var oldest time.Time
		for sum, e := range c.entries {
			if e.refs == 0 && (victim == "" || e.lastUsed.Before(oldest)) {
				victim, oldest = sum, e.lastUsed
			}
		}
		if victim == "" {
			return ErrBudget
		}
		_ = os.Remove(c.Path(victim))
		c.used -= c.entries[victim].size
		delete(c.entries, victim)
		c.evicted.Add(1)
	}
	c.used += size
	return nil
}

// download fetches a into a partial file, checks it and renames it into
// place, read-only; on any error nothing is left.
func (c *Cache) download(ctx context.Context, a algorithm.Asset) (err error) {
	tmp, err := os.CreateTemp(filepath.Join(c.dir, "partial"), a.SHA256+"-*")
	if err != nil {
		return classify(a, err)
	}
	defer func() {
		if err != nil {
			_ = tmp.Close()
			_ = os.Remove(tmp.Name())
		}
	}()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, a.URL, nil)
	if err != nil {
		return fmt.Errorf("asset %s: %w", a.Name, err)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("asset %s: %w", a.Name, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("asset %s: GET %s: %s", a.Name, a.URL, resp.Status)
	}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(tmp, h), io.LimitReader(resp.Body, a.Size+1))
	c.downloaded.Add(n)
	if err != nil {
		return classify(a, err)
	}
	if err := tmp.Sync(); err != nil {
		return classify(a, err)
	}
	if err := tmp.Close(); err != nil {
		return classify(a, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); n != a.Size || got != a.SHA256 {
		return fmt.Errorf("asset %s: %w: got %d bytes with sha256 %s", a.Name, ErrMismatch, n, got)
	}
	if err := os.Chmod(tmp.Name(), 0o444); err != nil {
		return classify(a, err)
	}
	if err := os.Rename(tmp.Name(), c.Path(a.SHA256)); err != nil {
		return classify(a, err)
	}
	return nil
}

func classify(a algorithm.Asset, err error) error {
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		return fmt.Errorf("asset %s (%d bytes): %w: %v", a.Name, a.Size, ErrDiskFull, err)
	}
	return fmt.Errorf("asset %s: %w", a.Name, err)
}
