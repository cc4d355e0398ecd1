// Package storebench measures the MongoDB job store: creates/s and
// compare-and-set transitions/s.
package storebench

import (
	"context"
	"encoding/json"
	"fmt"
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
	Jobs, Workers int
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
	elapsed, err = parallel(n, w, func(i int) error {
		_, err := store.Transition(ctx, ids[i], jobstore.Change{From: job.Queued, To: job.Running, Worker: "bench"})
		return err
	})
	if err != nil {
		return res, err
	}
	res.TransPerSec = float64(n) / elapsed.Seconds()
	return res, nil
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
