package agent

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/aigw/aigw/internal/algorithm"
	"github.com/aigw/aigw/internal/events"
	"github.com/aigw/aigw/internal/executorapi"
	"github.com/aigw/aigw/internal/job"
	"github.com/aigw/aigw/internal/registry"
	"github.com/aigw/aigw/worker/internal/artifacts"
	"github.com/aigw/aigw/worker/internal/assetcache"
	"github.com/aigw/aigw/worker/internal/config"
	"github.com/aigw/aigw/worker/internal/inputs"
	"github.com/aigw/aigw/worker/internal/metrics"
	"github.com/aigw/aigw/worker/internal/runner"
)

// A worker serves its pool one of two ways: the agent (Agent) speaks to
// Redis and MongoDB, a joined worker (Joined, aigw-worker --join) to the
// executor API through the gateway. Both take a job (the agent from the
// queue, the joined worker with a claim), keep its lease (the agent extends
// its queue entries, the joined worker heartbeats), and then run it the
// same way, here: core.execute fetches the input files and the algorithm's
// cached assets and runs the process (exec, http or on a warm serve
// process) with the runner, and core.complete stores the files it wrote and
// sends the outcome. What differs for one attempt (where progress and log
// lines go, where artifacts are stored, how the outcome is written) is its
// Transport.

// Transport is what one attempt's run reports to: the agent writes to the
// event stream, the artifact store and the job record (one compare-and-set)
// and settles the queue entry; a joined worker calls the executor API.
type Transport interface {
	// Progress and Logs are the run's progress events and log lines.
	Progress(ctx context.Context, p events.Progress)
	Logs(ctx context.Context, lines []string)
	// Started says the process has started (started true; called once, as
	// soon as it has, before any of its output is read), or that the
	// attempt is past the point where it would have (started false; the
	// agent then sends the running event it held back, if still due).
	Started(ctx context.Context, started bool)
	// SaveArtifacts stores the files a successful run wrote in dir (the top
	// level) and returns them as the record names them (nil where the far
	// side records them itself). An *artifacts.TooLargeError or a 413 fails
	// the attempt for good; any other error fails it retryably.
	SaveArtifacts(ctx context.Context, dir string) ([]job.Artifact, error)
	// Finish writes the attempt's outcome (res; cause is why it was stopped
	// from outside: errCanceled, errLost, errShutdown, or nil) and returns
	// its JobsFinished label, "" when it counts nothing.
	Finish(ctx context.Context, res runner.Result, cause error) string
}

// core is what both kinds of worker are: the runner and its warm
// processes, the input fetcher, the asset cache, the node's GPUs.
type core struct {
	cfg      config.Config
	log      *slog.Logger
	metrics  *metrics.Metrics
	runner   *runner.Runner
	inputs   *inputs.Fetcher   // nil: inputs are passed as they are
	assets   *assetcache.Cache // nil: algorithms with assets fail
	onFinish func(jobID, outcome string)

	// mu guards gpuBusy and the state of the worker that embeds core.
	mu      sync.Mutex
	gpus    []registry.GPU
	gpuBusy []bool
}

// init sets c up for a node with gpus.
func (c *core) init(cfg config.Config, log *slog.Logger, m *metrics.Metrics, in *inputs.Fetcher, assets *assetcache.Cache,
	gpus []registry.GPU, onFinish func(jobID, outcome string)) {
	c.cfg, c.log, c.metrics, c.inputs, c.assets, c.onFinish = cfg, log, m, in, assets, onFinish
	c.gpus, c.gpuBusy = gpus, make([]bool, len(gpus))
	c.runner = &runner.Runner{AlgorithmsDir: cfg.AlgorithmsDir, BinDir: cfg.BinDir, WorkDir: cfg.WorkDir,
		Interpreters: cfg.Interpreters, RunAs: runAs(cfg.RunAs), Log: log,
		Limits: runner.Limits{Output: cfg.OutputLimit, LogTail: cfg.LogTail, KillGrace: cfg.KillGrace}}
}

// runSpec is one attempt to run.
type runSpec struct {
	job     *job.Job // ID, Attempt, Input (and Tenant, for uploads read from the object store)
	def     *algorithm.Definition
	gpus    []int
	env     map[string]string
	timeout time.Duration
	lease   *runner.Lease // the warm process of a serve job, when one was taken
	// progress: the run's progress lines are sent (gang members' are not).
	progress bool
	// queued is when its queue entry was added (zero: unknown).
	queued time.Time
}

// execute runs one attempt: its input files and assets first, then the
// process; it returns the result and, when the run was stopped from
// outside, the cause.
func (c *core) execute(ctx context.Context, t Transport, r runSpec) (runner.Result, error) {
	start := time.Now()
	c.metrics.JobsStarted.Inc()
	if !r.queued.IsZero() {
		c.metrics.QueueWait.Observe(start.Sub(r.queued).Seconds())
	}
	hooks := runner.Hooks{
		Logs:    func(lines []string) { t.Logs(ctx, lines) },
		Started: func(int) { t.Started(ctx, true) },
	}
	if r.progress {
		hooks.Progress = func(p events.Progress) { t.Progress(ctx, p) }
	}
	input, env, cleanup, failed := c.prepareRun(ctx, t, r.job, r.def, r.env, hooks.Progress)
	defer cleanup()
	if failed != nil {
		t.Started(ctx, false)
		return runner.Result{Err: failed}, context.Cause(ctx)
	}
	spec := runner.Spec{JobID: r.job.ID, Attempt: r.job.Attempt, Input: input, Def: r.def, Timeout: r.timeout,
		GPUs: r.gpus, Env: env, Lease: r.lease}
	res := c.runner.Run(ctx, spec, hooks)
	t.Started(ctx, false) // a start that failed: the stream still says running before the end
	c.metrics.RunSeconds.Observe(time.Since(start).Seconds())
	if res.Err != nil && res.Err.Code == runner.CodeStopped {
		return res, context.Cause(ctx)
	}
	return res, nil
}

// complete stores the files a successful attempt wrote and sends its
// outcome (even when ctx was stopped: the outcome carries the cause).
func (c *core) complete(ctx context.Context, t Transport, jobID string, res runner.Result, cause error) {
	defer res.RemoveDir()
	if cause == nil && res.Err == nil && res.OutputDir != "" {
		// Before the outcome's time budget: storing files may take long.
		arts, err := t.SaveArtifacts(context.WithoutCancel(ctx), res.OutputDir)
		var tooLarge *artifacts.TooLargeError
		switch {
		case errors.As(err, &tooLarge) || executorapi.StatusOf(err) == http.StatusRequestEntityTooLarge:
			res.Err = &runner.Failure{Code: runner.CodeBadOut, Message: err.Error()}
		case err != nil:
			res.Err = &runner.Failure{Code: runner.CodeArtifact, Message: err.Error(), Retryable: true}
		default:
			res.Artifacts = arts
		}
	}
	if label := t.Finish(ctx, res, cause); label != "" {
		c.finished(jobID, label)
	}
}

// finished counts a run's outcome.
func (c *core) finished(jobID, outcome string) {
	c.metrics.JobsFinished.WithLabelValues(outcome).Inc()
	if c.onFinish != nil {
		c.onFinish(jobID, outcome)
	}
}

// gpuNeed is how many GPUs a run of def takes on this node: none on a node
// without GPUs that falls back to the CPU.
func (c *core) gpuNeed(def *algorithm.Definition, jobID string) int {
	need := def.Resources.GPUs
	if need > 0 && len(c.gpus) == 0 && c.cfg.CPUFallback {
		c.log.Info("no GPU on this node: running on the CPU (AIGW_CPU_FALLBACK)", "job_id", jobID, "gpus_wanted", need)
		need = 0
	}
	return need
}

// allocGPUs assigns n free GPUs of the node, or none (false).
func (c *core) allocGPUs(n int) ([]int, bool) {
	if n == 0 {
		return nil, true
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	var idx []int
	for i, b := range c.gpuBusy {
		if !b {
			idx = append(idx, i)
			if len(idx) == n {
				break
			}
		}
	}
	if len(idx) < n {
		return nil, false
	}
	out := make([]int, n)
	for k, i := range idx {
		c.gpuBusy[i] = true
		out[k] = c.gpus[i].Index
	}
	return out, true
}

// releaseGPUs marks indices free again.
func (c *core) releaseGPUs(indices []int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, gi := range indices {
		for i, g := range c.gpus {
			if g.Index == gi {
				c.gpuBusy[i] = false
			}
		}
	}
}

// gpuState is the node's GPUs with their Busy flags; c.mu is held.
func (c *core) gpuState() []registry.GPU {
	var out []registry.GPU
	for i, g := range c.gpus {
		g.Busy = c.gpuBusy[i]
		out = append(out, g)
	}
	return out
}

// runAs is the runtime's credential for the configured run user (nil: the
// worker's own).
func runAs(u *config.RunAs) *runner.Credential {
	if u == nil {
		return nil
	}
	return &runner.Credential{UID: u.UID, GID: u.GID}
}
