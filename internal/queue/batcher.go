package queue

import (
	"context"
	"sync"
	"time"
)

// batcher coalesces concurrent Enqueue calls into pipelines (group commit): a call
// that finds fewer than maxFlushers pipelines in flight sends everything pending
// at once; calls arriving meanwhile wait and go out together in the next pipeline.
// A lone caller pays one round trip, as with a plain command; under load many
// callers share one, so a round trip is no longer paid per job.
//
// Leadership moves from caller to caller: a leader flushes until its own request is
// answered, then hands its slot to the oldest waiting caller, so no caller works
// for others for long and no goroutine runs in the background.
type batcher struct {
	q           *Queue
	maxFlushers int
	maxBatch    int

	mu      sync.Mutex
	pending []*enqueueReq
	active  int
}

type enqueueReq struct {
	m    Message
	res  Enqueued
	err  error
	done chan struct{}
	lead chan struct{} // buffered(1): this caller now leads
	// handed is set (under batcher.mu) when a leader hands this request its
	// slot: a request is handed a slot at most once, so the send on lead
	// never blocks.
	handed bool
}

func (b *batcher) enqueue(ctx context.Context, m Message) (Enqueued, error) {
	if err := ctx.Err(); err != nil {
		return Enqueued{}, err
	}
	r := &enqueueReq{m: m, done: make(chan struct{}), lead: make(chan struct{}, 1)}
	b.mu.Lock()
	b.pending = append(b.pending, r)
	leader := b.active < b.maxFlushers
	if leader {
		b.active++
	}
	b.mu.Unlock()
	if !leader {
		select {
		case <-r.done:
			// Answered by another leader; if leadership arrived too, pass it on.
			select {
			case <-r.lead:
				b.lead(r)
			default:
			}
			return r.res, r.err
		case <-r.lead:
		}
	}
	b.lead(r)
	return r.res, r.err
}

// lead flushes pending requests until r is answered, then hands the flusher slot
// to the oldest waiting request that no other leader has handed one (or gives
// it up when none waits).
func (b *batcher) lead(r *enqueueReq) {
	for {
		select {
		case <-r.done:
			b.handOff()
			return
		default:
		}
		b.mu.Lock()
		n := min(len(b.pending), b.maxBatch)
		batch := make([]*enqueueReq, n)
		copy(batch, b.pending)
		b.pending = b.pending[n:]
		b.mu.Unlock()
		if n == 0 {
			// r is in a batch another leader is sending: wait for it.
			<-r.done
			b.handOff()
			return
		}
		b.flush(batch)
	}
}

// handOff passes the caller's flusher slot on. Several leaders may hand off at
// once while the same requests wait: each picks a different one (handed), so a
// slot is never sent to a request that already has one. That second send
// would block on its full channel while holding mu, and every caller would
// wait for mu for ever (seen with EnqueuePipelines 4 under the queue bench).
func (b *batcher) handOff() {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, r := range b.pending {
		if !r.handed {
			r.handed = true
			r.lead <- struct{}{}
			return
		}
	}
	b.active--
}

// flush sends one batch as a pipeline. It does not use any caller's context: the
// batch carries several callers' jobs. go-redis's own timeouts bound it.
func (b *batcher) flush(batch []*enqueueReq) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ms := make([]Message, len(batch))
	for i, r := range batch {
		ms[i] = r.m
	}
	res, errs := b.q.sendBatch(ctx, ms)
	for i, r := range batch {
		r.res, r.err = res[i], errs[i]
		close(r.done)
	}
}
