package orchestrator

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/aigw/aigw/internal/jobstore"
	"github.com/aigw/aigw/internal/pipeline"
	"github.com/aigw/aigw/internal/webhook"
)

// LockKey is the Redis key of the tick lock.
const LockKey = "aigw:{orchestrator}:tick"

// lock is a Redis lock with a TTL: SET NX PX to take, compare-and-delete to
// release, so a holder whose TTL lapsed never frees another's lock.
type lock struct {
	rdb redis.UniversalClient
	key string
	ttl time.Duration
}

var unlockScript = redis.NewScript(`
-- KEYS[1]: the lock key; ARGV[1]: the holder's token. Returns 1 when released.
if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("DEL", KEYS[1]) end
return 0`)

// acquire returns a release func, or ok=false when another holder has the lock.
func (l lock) acquire(ctx context.Context) (release func(), ok bool, err error) {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	token := hex.EncodeToString(b[:])
	ok, err = l.rdb.SetNX(ctx, l.key, token, l.ttl).Result()
	if err != nil {
		return nil, false, fmt.Errorf("tick lock: %w", err)
	}
	if !ok {
		return nil, false, nil
	}
	return func() {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = unlockScript.Run(ctx, l.rdb, []string{l.key}, token).Err() // its TTL frees it anyway
	}, true, nil
}

// Summary is the answer of POST /tick: what each part did.
type Summary struct {
	// Skipped: another tick (here or on another replica) holds the lock.
	Skipped    bool                   `json:"skipped"`
	Drain      webhook.DrainResult    `json:"webhook_drain"`
	Deliver    webhook.DeliverResult  `json:"webhook_deliver"`
	Reaper     ReapResult             `json:"reaper"`
	Reconciler ReconcileResult        `json:"reconciler"`
	Pipelines  pipeline.AdvanceResult `json:"pipelines"`
	// Errors maps a part that failed to its error; the other parts still ran.
	Errors     map[string]string `json:"errors,omitempty"`
	DurationMS int64             `json:"duration_ms"`
}

// Ticker runs the periodic work.
type Ticker struct {
	lock       lock
	jobs       *jobstore.Store
	deliverer  *webhook.Deliverer
	reaper     *Reaper
	reconciler *Reconciler
	pipelines  *pipeline.Engine
	log        *slog.Logger
}

// Tick runs every part once under the tick lock, each bounded by the lock's TTL.
func (t *Ticker) Tick(ctx context.Context) (Summary, error) {
	start := time.Now()
	var s Summary
	release, ok, err := t.lock.acquire(ctx)
	if err != nil {
		return s, err
	}
	if !ok {
		s.Skipped = true
		return s, nil
	}
	defer release()
	ctx, cancel := context.WithTimeout(ctx, t.lock.ttl-time.Second)
	defer cancel()
	s.Errors = map[string]string{}
	part := func(name string, err error) {
		if err != nil {
			s.Errors[name] = err.Error()
			t.log.ErrorContext(ctx, "tick part failed", "part", name, "err", err)
		}
	}
	s.Reaper, err = t.reaper.Reap(ctx)
	part("reaper", err)
	s.Reconciler, err = t.reconciler.Reconcile(ctx)
	part("reconciler", err)
	s.Pipelines, err = t.pipelines.AdvanceAll(ctx, 100)
	part("pipelines", err)
	// Webhooks last, so that the changes above are delivered in this tick.
	s.Drain, err = t.deliverer.Drain(ctx, t.jobs)
	part("webhook_drain", err)
	s.Deliver, err = t.deliverer.Deliver(ctx)
	part("webhook_deliver", err)
	if len(s.Errors) == 0 {
		s.Errors = nil
	}
	s.DurationMS = time.Since(start).Milliseconds()
	return s, nil
}

// Run ticks every interval until ctx ends.
func (t *Ticker) Run(ctx context.Context, interval time.Duration) {
	tk := time.NewTicker(interval)
	defer tk.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tk.C:
		}
		s, err := t.Tick(ctx)
		switch {
		case err != nil && !errors.Is(err, context.Canceled):
			t.log.ErrorContext(ctx, "tick failed", "err", err)
		case err == nil && !s.Skipped && s.Errors == nil:
			t.log.DebugContext(ctx, "tick", "summary", s)
		}
	}
}
