package queue

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// ErrNoDeadLetter is matched by errors about a dead-letter entry that is not
// (or no longer) in its pool.
var ErrNoDeadLetter = errors.New("no such dead letter")

// entryIDRE is a Redis stream entry id, <ms>-<seq>.
var entryIDRE = regexp.MustCompile(`^[0-9]{1,20}-[0-9]{1,20}$`)

// ValidEntryID reports whether id can be a stream entry id.
func ValidEntryID(id string) bool { return entryIDRE.MatchString(id) }

// DeadAt is when the entry was dead-lettered: the time of its entry id.
func (d DeadLetter) DeadAt() time.Time {
	ms, _, _ := strings.Cut(d.ID, "-")
	n, err := strconv.ParseInt(ms, 10, 64)
	if err != nil {
		return time.Time{}
	}
	return time.UnixMilli(n).UTC()
}

// Deliveries is how often the entry was delivered before it was
// dead-lettered, when the queue counted it (0: not recorded, e.g. a worker
// dead-lettered a job that failed for good).
func (d DeadLetter) Deliveries() int {
	n, _ := strconv.Atoi(d.Fields["deliveries"])
	return n
}

func deadLetterOf(pool string, shard int, id string, values map[string]any) DeadLetter {
	dl := DeadLetter{ID: id, Pool: pool, Shard: shard, Fields: map[string]string{}}
	for f, v := range values {
		sv, _ := v.(string)
		dl.Fields[f] = sv
	}
	dl.JobID, dl.Reason = dl.Fields["j"], dl.Fields["reason"]
	return dl
}

// DeadLetterEntry returns the pool's dead-letter entry id (an error matching
// ErrNoDeadLetter when no shard holds it). Entry ids are unique per shard; an
// id on two shards (two dead letters in the same millisecond and sequence on
// two masters) returns the one on the lowest shard.
func (q *Queue) DeadLetterEntry(ctx context.Context, pool, id string) (DeadLetter, error) {
	if err := ValidatePool(pool); err != nil {
		return DeadLetter{}, err
	}
	if !ValidEntryID(id) {
		return DeadLetter{}, fmt.Errorf("%w: %q in pool %s", ErrNoDeadLetter, id, pool)
	}
	for s := 0; s < q.cfg.Shards; s++ {
		msgs, err := q.rdb.XRangeN(ctx, q.keys(pool, s).dead, id, id, 1).Result()
		if err != nil {
			return DeadLetter{}, fmt.Errorf("dead letter %s of pool %s: %w", id, pool, err)
		}
		if len(msgs) == 1 {
			return deadLetterOf(pool, s, msgs[0].ID, msgs[0].Values), nil
		}
	}
	return DeadLetter{}, fmt.Errorf("%w: %s in pool %s", ErrNoDeadLetter, id, pool)
}

// EachDeadLetter calls fn with every entry of the pool's dead-letter streams,
// shard by shard, oldest first, reading them in pages; an error of fn stops
// the walk and is returned. fn may remove the entry it is given.
func (q *Queue) EachDeadLetter(ctx context.Context, pool string, fn func(DeadLetter) error) error {
	if err := ValidatePool(pool); err != nil {
		return err
	}
	const page = 256
	for s := 0; s < q.cfg.Shards; s++ {
		start := "-"
		for {
			msgs, err := q.rdb.XRangeN(ctx, q.keys(pool, s).dead, start, "+", page).Result()
			if err != nil {
				return fmt.Errorf("dead letters of pool %s: %w", pool, err)
			}
			for _, m := range msgs {
				if err := fn(deadLetterOf(pool, s, m.ID, m.Values)); err != nil {
					return err
				}
			}
			if len(msgs) < page {
				break
			}
			start = "(" + msgs[len(msgs)-1].ID
		}
	}
	return nil
}

// RemoveDeadLetter deletes a dead-letter entry (once its job was redriven);
// an entry already gone is an error matching ErrNoDeadLetter.
func (q *Queue) RemoveDeadLetter(ctx context.Context, d DeadLetter) error {
	if err := ValidatePool(d.Pool); err != nil {
		return err
	}
	n, err := q.rdb.XDel(ctx, q.keys(d.Pool, d.Shard).dead, d.ID).Result()
	if err != nil {
		return fmt.Errorf("remove dead letter %s of pool %s: %w", d.ID, d.Pool, err)
	}
	if n == 0 {
		return fmt.Errorf("%w: %s in pool %s", ErrNoDeadLetter, d.ID, d.Pool)
	}
	return nil
}
