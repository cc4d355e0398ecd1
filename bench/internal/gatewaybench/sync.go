package gatewaybench

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"github.com/aigw/aigw/internal/redisconn"
	"github.com/aigw/aigw/internal/registry"
)

// SyncConfig is one run of the synchronous echo call (the api bench's
// idle_pickup and sync_echo rows).
type SyncConfig struct {
	// RepoRoot is the directory holding go.work (the binaries are built from it).
	RepoRoot string
	// MongoURI and RedisAddrs (comma-separated) are the servers.
	MongoURI, RedisAddrs string
	// Calls is how many timed calls to make, one at a time (default 30).
	Calls int
	// Gap is the pause between two calls, so that each finds the system idle
	// (default 50ms).
	Gap time.Duration
	// Progress, when set, gets a line when the stack is up.
	Progress io.Writer
}

// SyncResult is the medians of the calls and where their time went, from the
// client's clock and the job record's timestamps (one machine, millisecond
// precision).
type SyncResult struct {
	Calls int
	// Runtime is the echo algorithm's runtime type (exec or serve).
	Runtime string
	// Echo is the whole call: POST /v1/algorithms/echo/jobs with Prefer: wait
	// through the gateway until the 200 with the finished job is read.
	Echo time.Duration
	// Submit is the request sent → queued_at (gateway, auth, router: the job
	// record's insert).
	Submit time.Duration
	// Pickup is queued_at → started_at: the enqueue, the job waiting in the
	// queue, the worker taking it and claiming its record.
	Pickup time.Duration
	// Run is started_at → finished_at: the process (or warm process) running
	// the job and its result being recorded.
	Run time.Duration
	// Reply is finished_at → the answer read: the router learning of the end
	// (the job's event stream), reading the record and answering through the
	// gateway.
	Reply time.Duration
}

// RunSync starts the stack (see startStack) and one worker serving its pool,
// as make up runs them, then submits echo jobs with `Prefer: wait=10` through
// the gateway one at a time on the otherwise idle system and reports the
// medians.
func RunSync(ctx context.Context, cfg SyncConfig) (SyncResult, error) {
	if cfg.Calls <= 0 {
		cfg.Calls = 30
	}
	if cfg.Gap <= 0 {
		cfg.Gap = 50 * time.Millisecond
	}
	if cfg.Progress == nil {
		cfg.Progress = io.Discard
	}
	dir, err := os.MkdirTemp("", "aigw-apibench")
	if err != nil {
		return SyncResult{}, err
	}
	defer os.RemoveAll(dir)
	// The worker may run algorithms as an unprivileged user: they must reach
	// the binaries and work directories below dir.
	if err := os.Chmod(dir, 0o755); err != nil {
		return SyncResult{}, err
	}
	var cl cleanups
	defer func() { cl.run() }()
	st, err := startStack(ctx, Config{RepoRoot: cfg.RepoRoot, MongoURI: cfg.MongoURI, RedisAddrs: cfg.RedisAddrs}, dir, &cl,
		"./worker/cmd/aigw-worker")
	if err != nil {
		return SyncResult{}, err
	}
	echo := exec.CommandContext(ctx, "go", "build", "-o", filepath.Join(st.bin, "aigw-echo"), "./algorithms/echo")
	echo.Dir = cfg.RepoRoot
	if b, err := echo.CombinedOutput(); err != nil {
		return SyncResult{}, fmt.Errorf("go build ./algorithms/echo: %w\n%s", err, b)
	}
	if err := startWorker(ctx, cfg, st, dir, &cl); err != nil {
		return SyncResult{}, err
	}
	fmt.Fprintf(cfg.Progress, "  stack up: gateway %s, worker on pool %s, echo runtime %s\n", st.g.url, st.pool, st.echo.Runtime.Type)

	res := SyncResult{Calls: cfg.Calls, Runtime: string(st.echo.Runtime.Type)}
	workerLog := func() string {
		b, _ := os.ReadFile(filepath.Join(dir, "worker.log"))
		return fmt.Sprintf("\nworker log:\n%s", b)
	}
	// Warm-up: the first calls start the worker's processes and fill caches.
	for range 3 {
		if _, err := syncEcho(ctx, st); err != nil {
			return res, fmt.Errorf("warm-up call: %w%s", err, workerLog())
		}
	}
	var echoes, submits, pickups, runs, replies []time.Duration
	for range cfg.Calls {
		time.Sleep(cfg.Gap)
		c, err := syncEcho(ctx, st)
		if err != nil {
			return res, fmt.Errorf("%w%s", err, workerLog())
		}
		echoes = append(echoes, c.done.Sub(c.sent))
		submits = append(submits, c.QueuedAt.Sub(c.sent))
		pickups = append(pickups, c.StartedAt.Sub(c.QueuedAt))
		runs = append(runs, c.FinishedAt.Sub(c.StartedAt))
		replies = append(replies, c.done.Sub(c.FinishedAt))
	}
	res.Echo, res.Submit, res.Pickup, res.Run, res.Reply = median(echoes), median(submits), median(pickups), median(runs), median(replies)
	return res, nil
}

// startWorker starts aigw-worker on the stack's pool, with the stack's
// database and the built binaries, and waits for it to register.
func startWorker(ctx context.Context, cfg SyncConfig, st *stack, dir string, cl *cleanups) error {
	port, err := freePort()
	if err != nil {
		return err
	}
	work := filepath.Join(dir, "work")
	if err := os.Mkdir(work, 0o755); err != nil {
		return err
	}
	w := exec.Command(filepath.Join(st.bin, "aigw-worker"))
	w.Env = append(os.Environ(), "AIGW_POOL="+st.pool, "AIGW_SLOTS=2", "AIGW_NODE_NAME=apibench-"+st.pool,
		"AIGW_REDIS_ADDRS="+cfg.RedisAddrs, "AIGW_MONGO_URI="+cfg.MongoURI, "AIGW_MONGO_DB="+st.db,
		"AIGW_ALGORITHMS_DIR="+filepath.Join(cfg.RepoRoot, "algorithms"), "AIGW_BIN_DIR="+st.bin,
		"AIGW_WORK_DIR="+work, "AIGW_CPU_FALLBACK=true", "AIGW_LOG_LEVEL=info",
		"AIGW_METRICS_ADDR=127.0.0.1:"+strconv.Itoa(port))
	logf, err := os.Create(filepath.Join(dir, "worker.log"))
	if err != nil {
		return err
	}
	w.Stdout, w.Stderr = logf, logf
	if err := start(w); err != nil {
		return err
	}
	cl.add(func() { stop(w); _ = logf.Close() })
	// The worker is in the pool's registry once it takes work.
	addrs, err := redisconn.ParseAddrs(cfg.RedisAddrs)
	if err != nil {
		return err
	}
	rdb, err := redisconn.Open(ctx, redisconn.Options{Addrs: addrs})
	if err != nil {
		return err
	}
	defer func() { _ = rdb.Close() }()
	reg := registry.New(rdb)
	for deadline := time.Now().Add(60 * time.Second); ; {
		if ws, err := reg.Workers(ctx, st.pool); err == nil && len(ws) > 0 {
			return nil
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(logf.Name())
			return fmt.Errorf("worker of pool %s not registered after 60s:\n%s", st.pool, b)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// syncCall is one timed call and the finished job's timestamps.
type syncCall struct {
	sent, done                      time.Time
	QueuedAt, StartedAt, FinishedAt time.Time
}

// syncEcho submits one echo job with Prefer: wait=10 and reads the finished job.
func syncEcho(ctx context.Context, st *stack) (syncCall, error) {
	var job struct {
		State      string     `json:"state"`
		QueuedAt   *time.Time `json:"queued_at"`
		StartedAt  *time.Time `json:"started_at"`
		FinishedAt *time.Time `json:"finished_at"`
	}
	hdr := st.hdr.Clone()
	hdr.Set("Prefer", "wait=10")
	c := syncCall{sent: time.Now()}
	status, err := call(ctx, http.MethodPost, st.api+"/v1/algorithms/echo/jobs", hdr,
		map[string]any{"input": map[string]any{"message": "hello"}}, &job, http.StatusOK, http.StatusAccepted)
	c.done = time.Now()
	if err != nil {
		return c, err
	}
	if status != http.StatusOK || job.State != "succeeded" || job.QueuedAt == nil || job.StartedAt == nil || job.FinishedAt == nil {
		return c, fmt.Errorf("sync echo: status %d, job %+v: want 200 with a succeeded job within 10s", status, job)
	}
	c.QueuedAt, c.StartedAt, c.FinishedAt = *job.QueuedAt, *job.StartedAt, *job.FinishedAt
	return c, nil
}

func median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}
