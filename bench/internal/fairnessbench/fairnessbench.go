// Package fairnessbench measures fair share (internal/fairq) on the shared Redis
// Cluster: two tenants with weights 3:1 keep a pool of simulated worker slots
// saturated, a third tenant arrives halfway, and every job's start is compared
// with the start fair share estimated when it was submitted.
//
// The workers are in-process: each slot takes a job from the pool's queue,
// holds it for the run time (±20 %), then reports its end to fair share (as
// lifecycle's end hook does) and acknowledges it. No MongoDB: what is measured
// is the admission, the picks and the estimate, not the job records.
package fairnessbench

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/aigw/aigw/internal/fairq"
	"github.com/aigw/aigw/internal/job"
	"github.com/aigw/aigw/internal/queue"
	"github.com/aigw/aigw/internal/registry"
)

// Config tunes a run. Zero values take the defaults noted.
type Config struct {
	Redis redis.UniversalClient
	// Duration is the length of the saturated run (default 60s).
	Duration time.Duration
	// Slots is the pool's worker slots (default 8).
	Slots int
	// Run is the mean run time of a job (default 100ms).
	Run time.Duration
	// Heavy and Light are the two tenants' weights (default 3 and 1).
	Heavy, Light float64
	// Progress, when set, gets a line now and then.
	Progress io.Writer
}

// Result is what a run measured.
type Result struct {
	// Served is each tenant's slot-seconds within the measured window (from
	// a tenth of the run to its end).
	Served map[string]float64
	// ServedRatio is heavy's slot-seconds ÷ light's (the weights' ratio is the
	// target).
	ServedRatio float64
	// LateWait is the late tenant's first job's wait; MeanRun the jobs' mean
	// run; LateStartRatio the first over the second.
	LateWait, MeanRun time.Duration
	LateStartRatio    float64
	// ETAErrorPct is the median of |start − estimated start| ÷ the job's
	// wait, in percent, over ETASamples jobs that waited for their fair
	// share.
	ETAErrorPct float64
	// ETABiasPct is the median of (start − estimated start) ÷ wait, in
	// percent: positive when jobs start later than estimated.
	ETABiasPct float64
	ETASamples int
	Jobs       int
	// Busy is the share of slot time spent in runs within the window; Rate
	// the pool's service rate fair share measured last (slot-seconds/s).
	Busy, Rate float64
}

const (
	heavy = "heavy"
	light = "light"
	late  = "late"
)

type state struct {
	cfg   Config
	pool  string
	q     *queue.Queue
	fair  *fairq.Fair
	start time.Time
	win   [2]time.Time

	mu          sync.Mutex
	submitted   map[string]time.Time // job id → submit time
	eta         map[string]time.Time // job id → estimated start
	outstanding map[string]int       // tenant → submitted, not started
	served      map[string]float64
	runs        []time.Duration
	lateWait    time.Duration
	errs        []float64
	jobs        int
	seq         int
}

// Run runs the bench.
func Run(ctx context.Context, cfg Config) (Result, error) {
	cfg.Duration = cmp.Or(cfg.Duration, 60*time.Second)
	cfg.Slots = cmp.Or(cfg.Slots, 8)
	cfg.Run = cmp.Or(cfg.Run, 100*time.Millisecond)
	cfg.Heavy, cfg.Light = cmp.Or(cfg.Heavy, 3), cmp.Or(cfg.Light, 1)
	weights := map[string]float64{heavy: cfg.Heavy, light: cfg.Light, late: 1}
	s := &state{cfg: cfg, pool: fmt.Sprintf("fairbench-%d", time.Now().UnixNano()%1e9),
		submitted: map[string]time.Time{}, eta: map[string]time.Time{}, outstanding: map[string]int{}, served: map[string]float64{}}
	s.q = queue.New(cfg.Redis, queue.Config{})
	s.fair = fairq.New(cfg.Redis, s.q, fairq.Config{Policy: func(_ context.Context, tenant, _ string) (float64, int, error) {
		return weights[tenant], 0, nil
	}})
	reg := registry.New(cfg.Redis)
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		_ = reg.Remove(cctx, s.pool, "fairbench")
		_ = reg.RemovePool(cctx, s.pool)
		_ = s.q.Purge(cctx, s.pool)
		_ = s.fair.Purge(cctx, s.pool)
	}()
	beat := func() error {
		return reg.Heartbeat(ctx, registry.Worker{Node: "fairbench", Pool: s.pool, Slots: cfg.Slots}, 10*time.Second)
	}
	if err := beat(); err != nil {
		return Result{}, err
	}
	if err := s.q.EnsureGroups(ctx, s.pool); err != nil {
		return Result{}, err
	}
	s.start = time.Now()
	s.win = [2]time.Time{s.start.Add(cfg.Duration / 10), s.start.Add(cfg.Duration)}
	rctx, cancel := context.WithDeadline(ctx, s.win[1])
	defer cancel()

	var wg sync.WaitGroup
	errc := make(chan error, cfg.Slots+4)
	for i := range cfg.Slots {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.work(rctx, i); err != nil && rctx.Err() == nil {
				errc <- err
			}
		}()
	}
	for _, t := range []string{heavy, light} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.feed(rctx, t); err != nil && rctx.Err() == nil {
				errc <- err
			}
		}()
	}
	wg.Add(1)
	go func() { // the late tenant, halfway; and the heartbeat
		defer wg.Done()
		tk := time.NewTicker(2 * time.Second)
		defer tk.Stop()
		lateAt := time.NewTimer(cfg.Duration / 2)
		defer lateAt.Stop()
		for {
			select {
			case <-rctx.Done():
				return
			case <-tk.C:
				_ = beat()
				if cfg.Progress != nil {
					s.mu.Lock()
					fmt.Fprintf(cfg.Progress, "  fairness: %s, %d jobs started\n", time.Since(s.start).Round(time.Second), s.jobs)
					s.mu.Unlock()
				}
			case <-lateAt.C:
				wg.Add(1)
				go func() {
					defer wg.Done()
					if err := s.feed(rctx, late); err != nil && rctx.Err() == nil {
						errc <- err
					}
				}()
			}
		}
	}()
	wg.Wait()
	close(errc)
	if err := <-errc; err != nil {
		return Result{}, err
	}
	r := s.result()
	if fs, err := s.fair.State(ctx, s.pool); err == nil {
		r.Rate = fs.Rate
	}
	var total float64
	for _, v := range r.Served {
		total += v
	}
	r.Busy = total / (s.win[1].Sub(s.win[0]).Seconds() * float64(cfg.Slots))
	return r, nil
}

// feed keeps tenant's submitted-but-not-started jobs at 4 × slots.
func (s *state) feed(ctx context.Context, tenant string) error {
	for ctx.Err() == nil {
		s.mu.Lock()
		short := 4*s.cfg.Slots - s.outstanding[tenant]
		s.mu.Unlock()
		for range short {
			if err := s.submit(ctx, tenant); err != nil {
				return err
			}
		}
		select {
		case <-ctx.Done():
		case <-time.After(10 * time.Millisecond):
		}
	}
	return nil
}

func (s *state) submit(ctx context.Context, tenant string) error {
	s.mu.Lock()
	s.seq++
	j := &job.Job{ID: fmt.Sprintf("%s-%07d", tenant, s.seq), Tenant: tenant, Pool: s.pool, Priority: job.Normal}
	s.outstanding[tenant]++
	s.mu.Unlock()
	now := time.Now()
	s.mu.Lock()
	s.submitted[j.ID] = now
	s.mu.Unlock()
	a, err := s.fair.Submit(ctx, j)
	if err != nil {
		return err
	}
	if a != fairq.Held || tenant == heavy { // sample the waiting jobs of light and late
		return nil
	}
	st, err := s.q.Stats(ctx, s.pool)
	if err != nil {
		return err
	}
	e, err := s.fair.Estimate(ctx, j, st)
	if err != nil {
		return err
	}
	if e.Start != nil {
		s.mu.Lock()
		if _, waiting := s.submitted[j.ID]; waiting { // not started meanwhile
			s.eta[j.ID] = *e.Start
		}
		s.mu.Unlock()
	}
	return nil
}

func tenantOf(id string) string {
	for i := len(id) - 1; i >= 0; i-- {
		if id[i] == '-' {
			return id[:i]
		}
	}
	return id
}

// work is one worker slot.
func (s *state) work(ctx context.Context, slot int) error {
	c, err := s.q.Consumer(s.pool, fmt.Sprintf("slot-%d", slot), queue.ConsumerOptions{Home: slot})
	if err != nil {
		return err
	}
	r := rand.New(rand.NewPCG(uint64(slot), 7))
	for ctx.Err() == nil {
		ds, err := c.Take(ctx, 1, 200*time.Millisecond)
		if err != nil {
			return err
		}
		for _, d := range ds {
			began := time.Now()
			t := tenantOf(d.JobID)
			s.mu.Lock()
			s.jobs++
			s.outstanding[t]--
			if sub, ok := s.submitted[d.JobID]; ok {
				if t == late && s.lateWait == 0 {
					s.lateWait = began.Sub(sub)
				}
				if eta, ok := s.eta[d.JobID]; ok && began.Sub(sub) > 0 {
					s.errs = append(s.errs, 100*began.Sub(eta).Seconds()/began.Sub(sub).Seconds())
				}
				delete(s.submitted, d.JobID)
				delete(s.eta, d.JobID)
			}
			s.mu.Unlock()
			run := time.Duration(float64(s.cfg.Run) * (0.8 + 0.4*r.Float64()))
			if t == light {
				run *= 2 // light's runs are twice as long: the share is in slot-seconds, not jobs
			}
			select {
			case <-ctx.Done():
			case <-time.After(run):
			}
			end := time.Now()
			secs := end.Sub(began).Seconds()
			s.mu.Lock()
			s.served[t] += overlap(began, end, s.win[0], s.win[1])
			s.runs = append(s.runs, end.Sub(began))
			s.mu.Unlock()
			dctx := context.WithoutCancel(ctx)
			if err := s.fair.Done(dctx, s.pool, d.JobID, secs); err != nil {
				return err
			}
			if err := c.Ack(dctx, d); err != nil {
				return err
			}
		}
	}
	return nil
}

// overlap is the seconds of [a, b] within [from, to].
func overlap(a, b, from, to time.Time) float64 {
	lo, hi := a, b
	if from.After(lo) {
		lo = from
	}
	if to.Before(hi) {
		hi = to
	}
	return max(hi.Sub(lo).Seconds(), 0)
}

func (s *state) result() Result {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := Result{Served: s.served, LateWait: s.lateWait, ETASamples: len(s.errs), Jobs: s.jobs}
	if s.served[light] > 0 {
		r.ServedRatio = s.served[heavy] / s.served[light]
	}
	var sum time.Duration
	for _, d := range s.runs {
		sum += d
	}
	if len(s.runs) > 0 {
		r.MeanRun = sum / time.Duration(len(s.runs))
		r.LateStartRatio = s.lateWait.Seconds() / r.MeanRun.Seconds()
	}
	if len(s.errs) > 0 {
		abs := make([]float64, len(s.errs))
		for i, e := range s.errs {
			abs[i] = max(e, -e)
		}
		slices.Sort(abs)
		slices.Sort(s.errs)
		r.ETAErrorPct = abs[len(abs)/2]
		r.ETABiasPct = s.errs[len(s.errs)/2]
	}
	return r
}
