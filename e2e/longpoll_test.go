package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aigw/aigw/internal/executorapi"
	"github.com/aigw/aigw/internal/httpmetrics"
	"github.com/aigw/aigw/internal/queue"
	"github.com/aigw/aigw/internal/testenv"
	"github.com/aigw/aigw/internal/testwait"
)

// functionPort finds the port of function name's process serving the
// system's database (the gateway gives it PORT; AIGW_MONGO_DB is the
// test's own), for its metrics endpoint, which the gateway does not proxy.
func (s *system) functionPort(t *testing.T, name string) string {
	t.Helper()
	procs, _ := filepath.Glob("/proc/[0-9]*/environ")
	for _, p := range procs {
		exe, err := os.Readlink(filepath.Join(filepath.Dir(p), "exe"))
		if err != nil || filepath.Base(exe) != name {
			continue
		}
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		var port string
		ours := false
		for _, kv := range strings.Split(string(b), "\x00") {
			if kv == "AIGW_MONGO_DB="+s.mongoDB {
				ours = true
			}
			if v, ok := strings.CutPrefix(kv, "PORT="); ok {
				port = v
			}
		}
		if ours && port != "" {
			return port
		}
	}
	t.Fatalf("no %s function process of this system", name)
	return ""
}

// gauge reads one gauge of a function's metrics.
func gauge(t *testing.T, fams httpmetrics.Families, name string) float64 {
	t.Helper()
	f := fams[name]
	if f == nil || len(f.GetMetric()) == 0 {
		t.Fatalf("no metric %s", name)
	}
	return f.GetMetric()[0].GetGauge().GetValue()
}

// TestThousandExecutorLongPollsThroughTheGateway: 1,000 executors hold a
// claim long poll open each, through the gateway, at once. The executors
// function holds them with a bounded number of goroutines and bytes per
// poll (measured from its own metrics), every poll is answered (none
// fails), and a job submitted while they wait goes to exactly one of them.
func TestThousandExecutorLongPollsThroughTheGateway(t *testing.T) {
	const n = 1000
	s := up(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	edge := s.pool + "-polls"
	rdb := testenv.Redis(t)
	t.Cleanup(func() { _ = queue.New(rdb, queue.Config{}).Purge(context.Background(), edge) })
	s.registerIn(edge, "echo-exec")
	api := s.gateway + "/function/executors"
	testwait.Eventually(t, 20*time.Second, func() bool { return get(api+"/_/health") == http.StatusOK }, "the executors function")
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: n, MaxConnsPerHost: 0, IdleConnTimeout: time.Minute}}
	defer hc.CloseIdleConnections()
	admin := executorapi.NewClient(api, s.admin, hc)

	// The executors, created and registered 16 at a time.
	clients := make([]*executorapi.Client, n)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n || ctx.Err() != nil {
					return
				}
				cr, err := admin.Create(ctx, edge, "poll-"+strconv.Itoa(i))
				if err != nil {
					t.Errorf("create: %v", err)
					return
				}
				c := executorapi.NewClient(api, cr.Token, hc)
				if _, err := c.Register(ctx, executorapi.Register{Version: "e2e", Slots: 1}); err != nil {
					t.Errorf("register: %v", err)
					return
				}
				clients[i] = c
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}

	metrics := "http://127.0.0.1:" + s.functionPort(t, "executors") + "/_/metrics"
	scrape := func() httpmetrics.Families {
		f, err := httpmetrics.Scrape(ctx, http.DefaultClient, metrics)
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	idle := scrape()
	g0, rss0, heap0 := gauge(t, idle, "go_goroutines"), gauge(t, idle, "process_resident_memory_bytes"), gauge(t, idle, "go_memstats_heap_inuse_bytes")

	var answered, failed, claimed atomic.Int64
	var claimedID atomic.Value
	for _, c := range clients {
		wg.Go(func() {
			js, err := c.Claim(ctx, executorapi.ClaimRequest{Max: 1, WaitMS: 12000})
			if err != nil {
				failed.Add(1)
				t.Errorf("claim: %v", err)
				return
			}
			answered.Add(1)
			for _, j := range js {
				claimed.Add(1)
				claimedID.Store(j.ID)
				if _, err := c.Finish(ctx, j.ID, executorapi.Finish{Attempt: j.Attempt, Outcome: executorapi.OutcomeSucceeded,
					Output: json.RawMessage(`{"message":"polled"}`)}); err != nil {
					t.Errorf("finish: %v", err)
				}
			}
		})
	}
	// Every poll open at the function: its goroutines grow by at least one a poll.
	var open httpmetrics.Families
	testwait.Eventually(t, 10*time.Second, func() bool {
		open = scrape()
		return gauge(t, open, "go_goroutines")-g0 >= n
	}, "%d polls open at the executors function", n)
	g1, rss1, heap1 := gauge(t, open, "go_goroutines"), gauge(t, open, "process_resident_memory_bytes"), gauge(t, open, "go_memstats_heap_inuse_bytes")
	j := s.submitTo("echo-exec", map[string]any{"message": "to one of a thousand"})
	wg.Wait()
	perPoll := (g1 - g0) / n
	t.Logf("%d long polls open through the gateway: executors function goroutines %.0f → %.0f (%.2f a poll), RSS %.1f → %.1f MiB (%.1f KiB a poll), heap in use %.1f → %.1f MiB",
		n, g0, g1, perPoll, rss0/(1<<20), rss1/(1<<20), (rss1-rss0)/n/1024, heap0/(1<<20), heap1/(1<<20))
	if failed.Load() != 0 || answered.Load() != n || claimed.Load() != 1 || claimedID.Load() != j.ID {
		t.Fatalf("%d answered, %d failed, %d jobs claimed (want %d, 0, 1: job %s)", answered.Load(), failed.Load(), claimed.Load(), n, j.ID)
	}
	if got := s.waitState(j.ID, "succeeded", 30*time.Second); got.Attempt != 1 {
		t.Fatalf("job %+v", got)
	}
	// Bounds: a poll holds its connection's goroutines and its handler's,
	// not a Redis connection; well under 64 KiB of heap each.
	if perPoll > 4 {
		t.Errorf("%.2f goroutines a poll, want at most 4", perPoll)
	}
	if d := heap1 - heap0; d > 64<<10*n {
		t.Errorf("heap in use grew %s for %d polls, want under 64 KiB a poll", fmt.Sprintf("%.1f MiB", d/(1<<20)), n)
	}
}
