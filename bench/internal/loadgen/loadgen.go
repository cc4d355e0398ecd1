// Package loadgen is the benchmarks' closed-loop load generator: a fixed number
// of clients each send one request after another for a fixed time, and the run
// reports the throughput and latency quantiles of the requests that succeeded.
package loadgen

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"
)

// Result of a run.
type Result struct {
	Requests int // succeeded
	Errors   int
	// FirstErr is one of the errors, when there were any.
	FirstErr error
	RPS      float64 // succeeded requests per second
	P50, P99 time.Duration
}

// Run runs concurrency clients of do for d. do gets a request counter, distinct
// across clients (to spread requests over inputs). A request cut short by the
// end of d is neither counted nor an error. It is an error when no request
// succeeded.
func Run(ctx context.Context, concurrency int, d time.Duration, do func(ctx context.Context, n int) error) (Result, error) {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var mu sync.Mutex
	var lat []time.Duration
	var res Result
	var wg sync.WaitGroup
	start := time.Now()
	for c := range concurrency {
		wg.Go(func() {
			var mine []time.Duration
			errs := 0
			var first error
			for n := c; ctx.Err() == nil; n += concurrency {
				t0 := time.Now()
				err := do(ctx, n)
				if ctx.Err() != nil {
					break
				}
				if err != nil {
					errs++
					if first == nil {
						first = err
					}
					continue
				}
				mine = append(mine, time.Since(t0))
			}
			mu.Lock()
			lat = append(lat, mine...)
			res.Errors += errs
			if res.FirstErr == nil {
				res.FirstErr = first
			}
			mu.Unlock()
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	if len(lat) == 0 {
		return res, fmt.Errorf("no request succeeded: %v", res.FirstErr)
	}
	slices.Sort(lat)
	res.Requests = len(lat)
	res.RPS = float64(len(lat)) / elapsed.Seconds()
	res.P50 = lat[len(lat)/2]
	res.P99 = lat[len(lat)*99/100]
	return res, nil
}
