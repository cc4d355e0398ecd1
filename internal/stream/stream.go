// Package stream is the consumer-group handling that every Redis Stream consumer
// of aigw shares (the job queue and the gateway's async calls): creating a group
// with its stream, reading with a bounded block, recovering when a stream or its
// group is gone, and taking over entries of dead consumers.
//
// A stream can vanish under running consumers: a failover that loses a master's
// last writes, an operator's DEL, an eviction. Producers re-create it with their
// next XADD, but without the consumer group, so every read then fails with
// NOGROUP (or, for a read blocked at the moment, "UNBLOCKED the stream key no
// longer exists"). A consumer that only logs that error never reads again while
// producers keep adding; Lost recognises it and the helpers here re-create the
// group from the start of the stream, so entries added since are delivered.
package stream

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Group is a consumer group on one stream.
type Group struct {
	Stream string
	Name   string
}

// Lost reports whether err says the stream or its consumer group does not exist
// (any more): NOGROUP, or a blocked read woken because its stream was deleted.
func Lost(err error) bool {
	if err == nil {
		return false
	}
	s := err.Error()
	return strings.HasPrefix(s, "NOGROUP") || strings.HasPrefix(s, "UNBLOCKED the stream key no longer exists")
}

// Create creates the group, and the stream if it is missing (MKSTREAM), reading
// from the start of the stream so that nothing already in it is skipped. A group
// that exists already is left as it is.
func (g Group) Create(ctx context.Context, rdb redis.Cmdable) error {
	err := rdb.XGroupCreateMkStream(ctx, g.Stream, g.Name, "0").Err()
	if err != nil && !strings.HasPrefix(err.Error(), "BUSYGROUP") {
		return fmt.Errorf("create consumer group %s on %s: %w", g.Name, g.Stream, err)
	}
	return nil
}

// Recover runs op; if it fails because a stream or group is gone (Lost), it
// creates the groups again and runs op once more.
func Recover[T any](ctx context.Context, rdb redis.Cmdable, groups []Group, op func() (T, error)) (T, error) {
	v, err := op()
	if !Lost(err) {
		return v, err
	}
	for _, g := range groups {
		if cerr := g.Create(ctx, rdb); cerr != nil {
			return v, errors.Join(err, cerr)
		}
	}
	return op()
}

// Block is XREADGROUP's block argument for a wait: a positive wait as it is (at
// least 1ms), anything else -1, answer at once. (go-redis sends BLOCK 0 for a
// zero Block, which waits forever.)
func Block(wait time.Duration) time.Duration {
	if wait <= 0 {
		return -1
	}
	return max(wait, time.Millisecond)
}

// Read reads up to count entries for consumer, waiting up to wait for one (see
// Block). start is ">" for entries never delivered, or an entry id to read the
// consumer's own pending entries after it. A lost stream or group is created
// again and read at once (it holds whatever producers added since). Nothing in
// time is an empty result and a nil error.
func (g Group) Read(ctx context.Context, rdb redis.Cmdable, consumer, start string, count int64, wait time.Duration) ([]redis.XMessage, error) {
	res, err := Recover(ctx, rdb, []Group{g}, func() ([]redis.XStream, error) {
		return rdb.XReadGroup(ctx, &redis.XReadGroupArgs{
			Group: g.Name, Consumer: consumer, Streams: []string{g.Stream, start}, Count: count, Block: Block(wait),
		}).Result()
	})
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s as %s/%s: %w", g.Stream, g.Name, consumer, err)
	}
	var out []redis.XMessage
	for _, s := range res {
		out = append(out, s.Messages...)
	}
	return out, nil
}

// Reclaim gives consumer the entries pending longer than minIdle, from start
// ("0-0" for the beginning), at most count (XAUTOCLAIM). next is where the
// following call starts, "0-0" when the scan went round. A lost stream or group
// is created again (nothing is pending in a new one).
func (g Group) Reclaim(ctx context.Context, rdb redis.Cmdable, consumer string, minIdle time.Duration, start string, count int64) (msgs []redis.XMessage, next string, err error) {
	type page struct {
		msgs []redis.XMessage
		next string
	}
	p, err := Recover(ctx, rdb, []Group{g}, func() (page, error) {
		msgs, next, err := rdb.XAutoClaim(ctx, &redis.XAutoClaimArgs{
			Stream: g.Stream, Group: g.Name, Consumer: consumer, MinIdle: minIdle, Start: start, Count: count,
		}).Result()
		return page{msgs, next}, err
	})
	if err != nil {
		return nil, "", fmt.Errorf("reclaim on %s as %s/%s: %w", g.Stream, g.Name, consumer, err)
	}
	return p.msgs, p.next, nil
}
