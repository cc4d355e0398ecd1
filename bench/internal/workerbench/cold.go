package workerbench

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/aigw/aigw/bench/internal/stats"
	"github.com/aigw/aigw/internal/algorithm"
	"github.com/aigw/aigw/internal/events"
	"github.com/aigw/aigw/internal/job"
	"github.com/aigw/aigw/internal/queue"
	"github.com/aigw/aigw/internal/registry"
	"github.com/aigw/aigw/worker/agent"
)

// Warm is an algorithm on the serve runtime whose cold start is measured.
type Warm struct {
	// What names it in the report (e.g. "matmul (Python, torch on the CPU)").
	What    string
	Runtime algorithm.Runtime
	Env     map[string]string
	GPUs    int
	Input   string
	// Where the worker finds its program.
	AlgorithmsDir, BinDir string
	Interpreters          []string
}

// ColdResult is the medians of a cold-start measurement.
type ColdResult struct {
	Runs int
	// ColdStart is the job record's cold_start_ms: the wait for a fresh
	// process's start and set-up.
	ColdStart time.Duration
	// ColdJob and WarmJob run from the enqueue to the outcome recorded: a job
	// that starts a process, and the next one, on that process.
	ColdJob, WarmJob time.Duration
}

// MatmulWarm is the matmul reference algorithm (algorithms/matmul, Python on
// the SDK) on the serve runtime, when /usr/bin/python3 imports torch
// (scripts/python-torch.sh) and the algorithms directory is found above the
// working directory; ok false otherwise.
func MatmulWarm(ctx context.Context) (Warm, bool) {
	dir, err := findUp("algorithms/matmul/matmul.py")
	if err != nil {
		return Warm{}, false
	}
	if err := exec.CommandContext(ctx, "/usr/bin/python3", "-c", "import torch").Run(); err != nil {
		return Warm{}, false
	}
	return Warm{What: "matmul (Python SDK, torch on the CPU), size 256",
		Runtime: algorithm.Runtime{Type: algorithm.Serve, Command: []string{"python3", "matmul.py"}, Dir: "matmul"},
		Env:     map[string]string{"PYTHONUNBUFFERED": "1", "PYTHONDONTWRITEBYTECODE": "1"}, GPUs: 1, Input: `{"size":256}`,
		AlgorithmsDir: filepath.Dir(filepath.Dir(dir)), Interpreters: []string{"/usr/bin/python3"}}, true
}

// EchoWarm is the echo reference algorithm (algorithms/echo, Go SDK) on the
// serve runtime, built into dir.
func EchoWarm(ctx context.Context, dir string) (Warm, error) {
	cmd := exec.CommandContext(ctx, "go", "build", "-o", filepath.Join(dir, "aigw-echo"), "github.com/aigw/aigw/algorithms/echo")
	if out, err := cmd.CombinedOutput(); err != nil {
		return Warm{}, fmt.Errorf("build echo: %w: %s", err, out)
	}
	return Warm{What: "echo (Go SDK)", Runtime: algorithm.Runtime{Type: algorithm.Serve, Command: []string{"aigw-echo"}},
		Input: `{"message":"hi"}`, AlgorithmsDir: dir, BinDir: dir}, nil
}

// findUp finds path in the working directory or one above it.
func findUp(path string) (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		p := filepath.Join(dir, path)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", os.ErrNotExist
		}
		dir = parent
	}
}

// MeasureColdStart runs w through one in-process agent, runs times: each time
// a new registration of it (a new version: no process of it is ready) gets a
// job, which starts a process, then a second job, which finds it warm.
func MeasureColdStart(ctx context.Context, cfg Config, w Warm, runs int) (res ColdResult, err error) {
	runs = max(runs, 1)
	res.Runs = runs
	run := fmt.Sprintf("coldbench%d", time.Now().UnixNano())
	st, closeStores, err := openStores(ctx, cfg, run)
	defer closeStores()
	if err != nil {
		return res, err
	}
	db, rdb, q, jobs, algos := st.db, st.rdb, st.q, st.jobs, st.algos
	tmp, err := os.MkdirTemp("", "aigw-coldbench-")
	if err != nil {
		return res, err
	}
	defer func() { _ = os.RemoveAll(tmp) }()
	finished := make(chan string, 16)
	a, err := agent.New(agent.Config{
		Pool: run, Node: run + "-w1", Slots: 1, AdvertiseAddr: "127.0.0.1", CPUFallback: true,
		AlgorithmsDir: w.AlgorithmsDir, BinDir: w.BinDir, WorkDir: tmp, Interpreters: w.Interpreters,
		Heartbeat: 2 * time.Second, Lease: 30 * time.Second, ShutdownGrace: 10 * time.Second, KillGrace: 2 * time.Second,
		RetryBase: time.Second, RetryMax: 5 * time.Second, GangTimeout: 30 * time.Second,
		OutputLimit: 1 << 20, LogTail: 64 << 10, ArtifactLimit: 16 << 20,
	}, agent.Deps{
		Redis: rdb, Queue: q, Jobs: jobs, Algorithms: algorithm.NewCache(algos, 2*time.Second), Events: events.New(rdb, events.Config{}),
		Registry: registry.New(rdb), Artifacts: agent.NewArtifactStore(db, 16<<20),
		OnFinish: func(id, outcome string) {
			if outcome != "succeeded" {
				slog.Warn("job did not succeed", "job_id", id, "outcome", outcome)
			}
			finished <- id
		},
	}, nil, "bench")
	if err != nil {
		return res, err
	}
	actx, stop := context.WithCancel(context.WithoutCancel(ctx))
	agentDone := make(chan struct{})
	go func() {
		defer close(agentDone)
		if err := a.Run(actx); err != nil {
			slog.Warn("agent stopped", "err", err)
		}
	}()
	defer func() {
		stop()
		<-agentDone
	}()
	one := func(version string) (*job.Job, time.Duration, error) {
		j, _, err := jobs.Create(ctx, job.Job{Tenant: "bench", Algorithm: "warm", Version: version, Pool: run, Input: json.RawMessage(w.Input)})
		if err != nil {
			return nil, 0, err
		}
		t0 := time.Now()
		if _, err := q.Enqueue(ctx, queue.MessageOf(j)); err != nil {
			return nil, 0, err
		}
		timeout := time.After(5 * time.Minute)
		for {
			select {
			case id := <-finished:
				if id != j.ID {
					continue
				}
				took := time.Since(t0)
				if j, err = jobs.GetByID(ctx, j.ID); err != nil {
					return nil, 0, err
				}
				if j.State != job.Succeeded {
					return nil, 0, fmt.Errorf("%s job %s: %s %+v", w.What, j.ID, j.State, j.Error)
				}
				return j, took, nil
			case <-timeout:
				return nil, 0, fmt.Errorf("%s job %s not done after 5 minutes", w.What, j.ID)
			case <-ctx.Done():
				return nil, 0, ctx.Err()
			}
		}
	}
	retries := 0
	var colds, coldJobs, warmJobs []time.Duration
	for i := range runs {
		version := fmt.Sprintf("1.0.%d", i)
		def := algorithm.Definition{Name: "warm", Version: version, Pool: run, Runtime: w.Runtime, Env: w.Env,
			Resources: algorithm.Resources{GPUs: w.GPUs}, MaxRetries: &retries, TimeoutMS: 300000}
		if _, _, err := algos.Put(ctx, def); err != nil {
			return res, err
		}
		cold, coldTook, err := one(version)
		if err != nil {
			return res, err
		}
		warm, warmTook, err := one(version)
		if err != nil {
			return res, err
		}
		if cold.ColdStartMS == 0 || warm.ColdStartMS != 0 {
			return res, fmt.Errorf("%s: cold_start_ms %d of the first job, %d of the second: want > 0, then 0", w.What, cold.ColdStartMS, warm.ColdStartMS)
		}
		slog.Info("cold start", "algorithm", w.What, "cold_start_ms", cold.ColdStartMS, "cold_job", coldTook.Round(time.Millisecond),
			"warm_job", warmTook.Round(time.Millisecond))
		colds = append(colds, time.Duration(cold.ColdStartMS)*time.Millisecond)
		coldJobs, warmJobs = append(coldJobs, coldTook), append(warmJobs, warmTook)
	}
	res.ColdStart, res.ColdJob, res.WarmJob = stats.Quantile(colds, 0.5), stats.Quantile(coldJobs, 0.5), stats.Quantile(warmJobs, 0.5)
	return res, nil
}
