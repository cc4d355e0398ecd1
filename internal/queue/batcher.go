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
// to the oldest waiting request (or gives it up when none waits).
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

func (b *batcher) handOff() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.pending) == 0 {
		b.active--
		return
	}
	b.pending[0].lead <- struct{}{}
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
