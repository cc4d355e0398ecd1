package orchestrator

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/aigw/aigw/internal/jobstore"
	"github.com/aigw/aigw/internal/pipeline"
	"github.com/aigw/aigw/internal/rediskeys"
	"github.com/aigw/aigw/internal/webhook"
)

// LockKey is the Redis key of the tick lease.
const LockKey = rediskeys.OrchestratorTick

// Summary is the answer of POST /tick: what each part did.
type Summary struct {
	// Skipped: another tick (here or on another replica) holds the lease.
	Skipped    bool                   `json:"skipped"`
	Drain      webhook.DrainResult    `json:"webhook_drain"`
	Deliver    webhook.DeliverResult  `json:"webhook_deliver"`
	Reaper     ReapResult             `json:"reaper"`
	Reconciler ReconcileResult        `json:"reconciler"`
	Pipelines  pipeline.AdvanceResult `json:"pipelines"`
	Retention  PurgeResult            `json:"retention"`
	// Errors maps a part that failed to its error; the other parts still ran.
	Errors     map[string]string `json:"errors,omitempty"`
	DurationMS int64             `json:"duration_ms"`
}

// Ticker runs the periodic work.
type Ticker struct {
	lease lease
	// timeout bounds one tick.
	timeout    time.Duration
	jobs       *jobstore.Store
	deliverer  *webhook.Deliverer
	reaper     *Reaper
	reconciler *Reconciler
	purger     *Purger
	pipelines  *pipeline.Engine
	log        *slog.Logger
	// metrics, when set, records each tick and is refreshed after it.
	metrics *Metrics
}

// Tick runs every part once under the tick lease, bounded by timeout. The
// lease is short and renewed while the tick works; a tick that loses it (taken
// over after a renewal failed for a whole lease) stops, and its parts report
// the cause. The lease is released when the tick ends, also on shutdown.
// Then, also when another replica held the lease, it refreshes the metrics.
func (t *Ticker) Tick(ctx context.Context) (Summary, error) {
	s, err := t.tick(ctx)
	if t.metrics == nil || ctx.Err() != nil {
		return s, err
	}
	if err == nil && !s.Skipped {
		t.metrics.observeTick(s, time.Duration(s.DurationMS)*time.Millisecond)
	}
	rctx, cancel := context.WithTimeout(ctx, metricsRefreshTimeout)
	defer cancel()
	if rerr := t.metrics.Refresh(rctx); rerr != nil {
		t.log.WarnContext(ctx, "metrics not refreshed", "err", rerr)
	}
	return s, err
}

// metricsRefreshTimeout bounds a refresh of the metrics after a tick.
const metricsRefreshTimeout = 10 * time.Second

func (t *Ticker) tick(ctx context.Context) (Summary, error) {
	start := time.Now()
	var s Summary
	held, ok, err := t.lease.acquire(ctx)
	if err != nil {
		return s, err
	}
	if !ok {
		s.Skipped = true
		return s, nil
	}
	ctx, cancel := context.WithTimeout(ctx, t.timeout)
	defer cancel()
	ctx, lose := context.WithCancelCause(ctx)
	kept := make(chan struct{})
	go func() {
		defer close(kept)
		held.keep(ctx, lose)
	}()
	defer func() {
		lose(nil)
		<-kept
		if err := held.release(ctx); err != nil {
			t.log.WarnContext(ctx, "tick lease not released; it expires by itself", "err", err, "ttl", t.lease.ttl)
		}
	}()
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
	s.Retention, err = t.purger.Purge(ctx)
	part("retention", err)
	// Webhooks last, so that the changes above are delivered in this tick.
	s.Drain, err = t.deliverer.Drain(ctx, t.jobs)
	part("webhook_drain", err)
	s.Deliver, err = t.deliverer.Deliver(ctx)
	part("webhook_deliver", err)
	if cause := context.Cause(ctx); errors.Is(cause, errLeaseLost) {
		s.Errors["lease"] = cause.Error() // the parts stopped where they were
	}
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
