package storebench

// Scratch (aigw-devmongo scale measurement); opt-in via AIGW_SCALE_URI.

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aigw/aigw/internal/job"
	"github.com/aigw/aigw/internal/jobstore"
)

func TestDevmongoScale(t *testing.T) {
	uri := os.Getenv("AIGW_SCALE_URI")
	if uri == "" {
		t.Skip("AIGW_SCALE_URI")
	}
	maxTrans, _ := strconv.Atoi(os.Getenv("AIGW_SCALE_MAXTRANS"))
	ctx := context.Background()
	client, err := jobstore.Open(ctx, uri)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Disconnect(ctx)
	for _, ns := range strings.Split(os.Getenv("AIGW_SCALE_N"), ",") {
		n, _ := strconv.Atoi(ns)
		db := client.Database(fmt.Sprintf("aigw_scale_%d", time.Now().UnixNano()))
		store, err := jobstore.New(ctx, db, jobstore.Options{})
		if err != nil {
			t.Fatal(err)
		}
		ids := make([]string, n)
		input := json.RawMessage(`{"message":"bench"}`)
		el, err := parallel(n, 8, func(i int) error {
			j, _, err := store.Create(ctx, job.Job{Tenant: "bench", Algorithm: "echo", Pool: "cpu", Input: input})
			if err == nil {
				ids[i] = j.ID
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		cps := float64(n) / el.Seconds()
		k := n
		if maxTrans > 0 && k > maxTrans {
			k = maxTrans
		}
		el, err = parallel(k, 8, func(i int) error {
			_, err := store.Transition(ctx, ids[i*(n/k)], jobstore.Change{From: job.Queued, To: job.Running, Worker: "bench"})
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		// losers: a second CAS queued→running on the same ids must conflict
		lk := min(k, 200)
		el2, _ := parallel(lk, 8, func(i int) error {
			_, err := store.Transition(ctx, ids[i*(n/k)], jobstore.Change{From: job.Queued, To: job.Running, Worker: "bench"})
			if err == nil {
				return fmt.Errorf("second transition of %s succeeded", ids[i*(n/k)])
			}
			return nil
		})
		t.Logf("RESULT n=%d creates/s=%.0f transitions/s=%.1f (%d transitions) conflicts/s=%.1f", n, cps, float64(k)/el.Seconds(), k, float64(lk)/el2.Seconds())
		_ = db.Drop(ctx)
	}
}
