package ratelimit

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aigw/aigw/internal/testenv"
)

func TestBucketAdmitsBurstThenRefills(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rdb := testenv.Redis(t)
	// 2 tokens/s: a token takes 500 ms to come back, far longer than three
	// requests take even on a loaded machine, so Remaining is exact.
	lim := Limit{Rate: 2, Burst: 3}
	perToken := time.Duration(float64(time.Second) / lim.Rate)
	l, err := New(rdb, lim)
	if err != nil {
		t.Fatal(err)
	}
	key := testenv.UniqueName(t, 40)
	t.Cleanup(func() { _ = rdb.Del(context.Background(), Key(key)).Err() })
	for i := range 3 {
		r, err := l.Allow(ctx, key)
		if err != nil || !r.Allowed || r.Remaining != 2-i {
			t.Fatalf("request %d: %+v %v", i, r, err)
		}
	}
	r, err := l.Allow(ctx, key)
	if err != nil || r.Allowed {
		t.Fatalf("4th request: %+v %v, want refused", r, err)
	}
	if r.RetryAfter <= 0 || r.RetryAfter > perToken {
		t.Fatalf("retry after %s, want (0, %s] at %g/s", r.RetryAfter, perToken, lim.Rate)
	}
	time.Sleep(r.RetryAfter + 10*time.Millisecond)
	if r, err := l.Allow(ctx, key); err != nil || !r.Allowed {
		t.Fatalf("after the refill: %+v %v", r, err)
	}
	ttl, err := rdb.PTTL(ctx, Key(key)).Result()
	if full := time.Duration(float64(lim.Burst)*float64(perToken)) + time.Second; err != nil || ttl <= 0 || ttl > full {
		t.Fatalf("bucket ttl %s %v, want until full again (+1s): ≤ %s", ttl, err, full)
	}
	// Another key has its own bucket.
	other := key + "x"
	t.Cleanup(func() { _ = rdb.Del(context.Background(), Key(other)).Err() })
	if r, err := l.Allow(ctx, other); err != nil || !r.Allowed {
		t.Fatalf("other key: %+v %v", r, err)
	}
}

func TestConcurrentRequestsNeverExceedTheBucket(t *testing.T) {
	t.Parallel()
	rdb := testenv.Redis(t)
	// A slow refill, so that only the burst is admitted during the test.
	l, err := New(rdb, Limit{Rate: 0.001, Burst: 20})
	if err != nil {
		t.Fatal(err)
	}
	key := testenv.UniqueName(t, 40)
	t.Cleanup(func() { _ = rdb.Del(context.Background(), Key(key)).Err() })
	var allowed atomic.Int32
	var wg sync.WaitGroup
	for range 100 {
		wg.Go(func() {
			r, err := l.Allow(context.Background(), key)
			if err != nil {
				t.Error(err)
			}
			if r.Allowed {
				allowed.Add(1)
			}
		})
	}
	wg.Wait()
	if allowed.Load() != 20 {
		t.Fatalf("admitted %d of 100, want exactly the burst of 20", allowed.Load())
	}
}

func TestNewRefusesAnEmptyLimit(t *testing.T) {
	for _, l := range []Limit{{}, {Rate: 1}, {Burst: 1}, {Rate: -1, Burst: 1}} {
		if _, err := New(nil, l); err == nil {
			t.Errorf("%+v accepted", l)
		}
	}
}
