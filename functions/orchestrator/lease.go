package orchestrator

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/aigw/aigw/internal/redisconn"
)

// errLeaseLost is the cause of a tick's context when its lease was taken over
// or could not be renewed before it expired: the work stops.
var errLeaseLost = errors.New("tick lease lost")

// lease is a short Redis lease on the tick, held by a random token: SET NX PX
// takes it, a holder renews it while it works, and renewal and release act
// only while the key still holds the holder's token (fencing), so a holder
// whose lease lapsed never extends or frees another's. A holder that dies
// (a restart mid-tick, a failover that lost the key's owner) blocks the next
// tick for at most ttl.
type lease struct {
	rdb redis.UniversalClient
	key string
	ttl time.Duration
}

// renewScript extends the lease if it is still ours.
var renewScript = redis.NewScript(`
-- KEYS[1]: the lease key; ARGV[1]: the holder's token; ARGV[2]: the TTL in ms.
-- Returns 1 when renewed, 0 when the key is missing or holds another token.
-- One key, so one slot.
if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("PEXPIRE", KEYS[1], ARGV[2]) end
return 0`)

// releaseScript deletes the lease if it still holds our token.
var releaseScript = redisconn.CompareAndDelete

// heldLease is a lease this process holds.
type heldLease struct {
	lease
	token string
}

// acquire takes the lease, or returns ok=false when another holder has it.
func (l lease) acquire(ctx context.Context) (h *heldLease, ok bool, err error) {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	token := hex.EncodeToString(b[:])
	ok, err = l.rdb.SetNX(ctx, l.key, token, l.ttl).Result()
	if err != nil {
		return nil, false, fmt.Errorf("tick lease: %w", err)
	}
	if !ok {
		return nil, false, nil
	}
	return &heldLease{lease: l, token: token}, true, nil
}

// renew extends the lease by ttl; ours=false means it is no longer ours.
func (h *heldLease) renew(ctx context.Context) (ours bool, err error) {
	n, err := renewScript.Run(ctx, h.rdb, []string{h.key}, h.token, h.ttl.Milliseconds()).Int()
	if err != nil {
		return false, fmt.Errorf("renew tick lease: %w", err)
	}
	return n == 1, nil
}

// release frees the lease if it is still ours. It runs on a context of its own
// (bounded), so that a tick ended by shutdown still frees it.
func (h *heldLease) release(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 3*time.Second)
	defer cancel()
	if err := releaseScript.Run(ctx, h.rdb, []string{h.key}, h.token).Err(); err != nil {
		return fmt.Errorf("release tick lease: %w", err)
	}
	return nil
}

// keep renews the lease every ttl/3 until ctx ends. When the lease is no
// longer ours, or no renewal has succeeded for a whole ttl (it may have
// expired and been taken), it calls lose with errLeaseLost and returns.
func (h *heldLease) keep(ctx context.Context, lose context.CancelCauseFunc) {
	every := h.ttl / 3
	tk := time.NewTicker(every)
	defer tk.Stop()
	renewed := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tk.C:
		}
		start := time.Now()
		rctx, cancel := context.WithTimeout(ctx, every)
		ours, err := h.renew(rctx)
		cancel()
		switch {
		case err == nil && ours:
			renewed = start
		case err == nil:
			lose(fmt.Errorf("%w: another holder has it", errLeaseLost))
			return
		case ctx.Err() != nil:
			return
		case time.Since(renewed) >= h.ttl:
			lose(fmt.Errorf("%w: not renewed for %s: %v", errLeaseLost, h.ttl, err))
			return
		}
	}
}
