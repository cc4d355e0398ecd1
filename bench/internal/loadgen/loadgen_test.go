package loadgen

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

func TestRunCountsSuccessesAndErrors(t *testing.T) {
	var mu sync.Mutex
	seen := map[int]bool{}
	res, err := Run(context.Background(), 4, 200*time.Millisecond, func(ctx context.Context, n int) error {
		mu.Lock()
		dup := seen[n]
		seen[n] = true
		mu.Unlock()
		if dup {
			t.Errorf("request number %d given twice", n)
		}
		time.Sleep(time.Millisecond)
		if n%10 == 0 {
			return errors.New("every tenth fails")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Requests == 0 || res.Errors == 0 || res.FirstErr == nil || res.RPS <= 0 || res.P50 < time.Millisecond || res.P99 < res.P50 {
		t.Fatalf("result %+v", res)
	}
	if _, err := Run(context.Background(), 2, 50*time.Millisecond, func(context.Context, int) error { return errors.New("down") }); err == nil {
		t.Fatal("a run with no success must be an error")
	}
}
