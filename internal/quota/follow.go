package quota

import (
	"context"
	"log/slog"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/aigw/aigw/internal/rediskeys"
)

// Changed forgets tenant here and tells every Cache that follows rdb
// (Follow) to forget it too: a quota change or a deletion takes effect on
// every replica at once, not within the TTL.
func (c *Cache) Changed(ctx context.Context, rdb redis.UniversalClient, tenant string) error {
	c.Forget(tenant)
	return rdb.Publish(ctx, rediskeys.QuotaChanges, tenant).Err()
}

// Follow subscribes to what Changed announces and, until ctx ends, forgets
// each tenant announced; it returns once subscribed (or the error). While it
// is not subscribed (Redis away), what c holds still expires after its TTL.
func (c *Cache) Follow(ctx context.Context, rdb redis.UniversalClient) error {
	ps := rdb.Subscribe(ctx, rediskeys.QuotaChanges)
	if _, err := ps.Receive(ctx); err != nil {
		_ = ps.Close()
		return err
	}
	go func() {
		defer func() { _ = ps.Close() }()
		msgs := ps.Channel()
		for {
			select {
			case <-ctx.Done():
				return
			case m, ok := <-msgs:
				if !ok {
					return
				}
				c.Forget(m.Payload)
			}
		}
	}()
	return nil
}

// KeepFollowing is Follow, tried again every 5 s while Redis cannot be
// reached (once subscribed, the client resubscribes by itself), until ctx
// ends.
func (c *Cache) KeepFollowing(ctx context.Context, rdb redis.UniversalClient, log *slog.Logger) {
	for {
		err := c.Follow(ctx, rdb)
		if err == nil || ctx.Err() != nil {
			return
		}
		log.WarnContext(ctx, "not following quota changes yet: another replica's quota change or tenant deletion takes effect here within the quota cache's TTL", "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(5 * time.Second):
		}
	}
}
