// Package storebench measures the MongoDB job store: creates/s and
// compare-and-set transitions/s, each goroutine on jobs of its own, and the
// transitions' latency.
package storebench

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/aigw/aigw/internal/job"
	"github.com/aigw/aigw/internal/jobstore"
	"github.com/aigw/aigw/internal/mongoconn"
)

// Result is the store's figures.
type Result struct {
	Server        string // what answered hello (e.g. FerretDB or MongoDB)
	CreatesPerSec float64
	TransPerSec   float64
	// TransP50, TransP99: one transition's latency (a compare-and-set on a
	// job no other goroutine touches).
	TransP50, TransP99 time.Duration
	Jobs, Workers      int
}

// Run creates n jobs with w goroutines, then moves each queued → running.
func Run(ctx context.Context, uri string, n, w int) (Result, error) {
	res := Result{Jobs: n, Workers: w}
	client, err := mongoconn.Open(ctx, mongoconn.Options{URI: uri})
	if err != nil {
		return res, err
	}
	defer client.Disconnect(context.Background())
	var hello map[string]any
	if err := client.Database("admin").RunCommand(ctx, map[string]any{"buildInfo": 1}).Decode(&hello); err == nil {
		res.Server = fmt.Sprint("MongoDB-wire ", hello["version"])
		if fv, ok := hello["ferretdbVersion"]; ok {
			res.Server = strings.TrimSuffix(fmt.Sprint("FerretDB ", fv), " unknown")
		}
	}
	db := client.Database(fmt.Sprintf("aigw_bench_%d", time.Now().UnixNano()))
	defer db.Drop(context.Background())
	store, err := jobstore.New(ctx, db, jobstore.Options{})
	if err != nil {
		return res, err
	}
	ids := make([]string, n)
	input := json.RawMessage(`{"message":"bench"}`)
	elapsed, err := parallel(n, w, func(i int) error {
		j, _, err := store.Create(ctx, job.Job{Tenant: "bench", Algorithm: "echo", Pool: "cpu", Input: input})
		if err == nil {
			ids[i] = j.ID
		}
		return err
	})
	if err != nil {
		return res, err
	}
	res.CreatesPerSec = float64(n) / elapsed.Seconds()
	took := make([]time.Duration, n)
	elapsed, err = parallel(n, w, func(i int) error {
		start := time.Now()
		_, err := store.Transition(ctx, ids[i], jobstore.Change{From: job.Queued, To: job.Running, Worker: "bench"})
		took[i] = time.Since(start)
		return err
	})
	if err != nil {
		return res, err
	}
	res.TransPerSec = float64(n) / elapsed.Seconds()
	slices.Sort(took)
	res.TransP50, res.TransP99 = quantile(took, 0.50), quantile(took, 0.99)
	return res, nil
}

// quantile of sorted durations (nearest rank).
func quantile(d []time.Duration, q float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	return d[min(len(d)-1, int(q*float64(len(d))))]
}

func parallel(n, w int, fn func(i int) error) (time.Duration, error) {
	start := time.Now()
	next := make(chan int)
	var wg sync.WaitGroup
	var once sync.Once
	var first error
	for g := 0; g < w; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if err := fn(i); err != nil {
					once.Do(func() { first = err })
				}
			}
		}()
	}
	for i := 0; i < n; i++ {
		next <- i
	}
	close(next)
	wg.Wait()
	return time.Since(start), first
}
