package redisconn_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/aigw/aigw/internal/redisconn"
	"github.com/aigw/aigw/internal/testenv"
)

// Outages as a real cluster and a real client report them, and errors that
// are not outages.
func TestIsUnavailable(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rdb := testenv.Redis(t)
	key := "{" + testenv.UniqueName(t, 30) + "}:k"
	if err := rdb.Set(ctx, key, "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	wrongType := rdb.LPush(ctx, key, "x").Err()
	missing := rdb.Get(ctx, key+":missing").Err()

	closed, err := redisconn.Open(ctx, redisconn.Options{Addrs: testenv.RedisAddrs(t)})
	if err != nil {
		t.Fatal(err)
	}
	_ = closed.Close()
	afterClose := closed.Get(ctx, key).Err()

	for _, tc := range []struct {
		name   string
		err    error
		outage bool
	}{
		{"nil", nil, false},
		{"wrong type", wrongType, false},
		{"missing key", missing, false},
		{"closed client", fmt.Errorf("enqueue: %w", afterClose), true},
		{"cluster down", errors.New("CLUSTERDOWN The cluster is down"), true},
		{"try again", errors.New("TRYAGAIN Multiple keys request during rehashing of slot"), true},
		{"plain", errors.New("boom"), false},
	} {
		if got := redisconn.IsUnavailable(tc.err); got != tc.outage {
			t.Errorf("%s: IsUnavailable(%v) = %v, want %v", tc.name, tc.err, got, tc.outage)
		}
	}
}
