package queue

import (
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// TestDeadLetterWalkFindAndRemove: EachDeadLetter pages through every shard's
// dead letters (more than a page), an entry can be removed during the walk,
// DeadLetterEntry finds one by id and a removed or unknown one is
// ErrNoDeadLetter.
func TestDeadLetterWalkFindAndRemove(t *testing.T) {
	t.Parallel()
	b := setup(t, Config{Shards: 2})
	perShard := map[int]int{0: 300, 1: 5}
	for shard, n := range perShard {
		pipe := b.rdb.Pipeline()
		for i := range n {
			pipe.XAdd(b.ctx, &redis.XAddArgs{Stream: b.q.keys(b.pool, shard).dead,
				Values: []string{"reason", "max_deliveries", "j", "job-" + strconv.Itoa(shard) + "-" + strconv.Itoa(i), "deliveries", "6"}})
		}
		if _, err := pipe.Exec(b.ctx); err != nil {
			t.Fatal(err)
		}
	}
	seen := map[string]bool{}
	removed := 0
	err := b.q.EachDeadLetter(b.ctx, b.pool, func(d DeadLetter) error {
		if seen[d.JobID] || d.Pool != b.pool || d.Reason != "max_deliveries" || d.Deliveries() != 6 ||
			time.Since(d.DeadAt()) > time.Minute || time.Since(d.DeadAt()) < -time.Minute {
			t.Fatalf("dead letter %+v (seen before: %v)", d, seen[d.JobID])
		}
		seen[d.JobID] = true
		if len(seen)%2 == 0 {
			removed++
			return b.q.RemoveDeadLetter(b.ctx, d)
		}
		return nil
	})
	if err != nil || len(seen) != 305 {
		t.Fatalf("walked %d dead letters, want 305: %v", len(seen), err)
	}
	left, err := b.q.DeadLetters(b.ctx, b.pool, 1000)
	if err != nil || len(left) != 305-removed {
		t.Fatalf("%d left, want %d: %v", len(left), 305-removed, err)
	}
	d, err := b.q.DeadLetterEntry(b.ctx, b.pool, left[len(left)-1].ID)
	if err != nil || d.JobID != left[len(left)-1].JobID || d.Shard != left[len(left)-1].Shard {
		t.Fatalf("find %+v: %+v %v", left[len(left)-1], d, err)
	}
	if err := b.q.RemoveDeadLetter(b.ctx, d); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{d.ID, "1-0", "not-an-id"} {
		if _, err := b.q.DeadLetterEntry(b.ctx, b.pool, id); !errors.Is(err, ErrNoDeadLetter) {
			t.Errorf("find %q: %v, want ErrNoDeadLetter", id, err)
		}
	}
	if err := b.q.RemoveDeadLetter(b.ctx, d); !errors.Is(err, ErrNoDeadLetter) {
		t.Errorf("remove twice: %v, want ErrNoDeadLetter", err)
	}
}
