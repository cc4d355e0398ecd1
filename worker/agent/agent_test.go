package agent

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aigw/aigw/internal/algorithm"
	"github.com/aigw/aigw/internal/events"
	"github.com/aigw/aigw/internal/job"
	"github.com/aigw/aigw/internal/testwait"
	"github.com/aigw/aigw/worker/internal/gpu"
)

// The same run both ways a worker starts a job: claimed in one update (the
// queue entry names the algorithm) and read then compared-and-set (it does
// not: the version is left to the worker, or the webhook wants the running
// event, which the slow path writes to the outbox with the state).
func TestEchoEndToEnd(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.algo("echo", []string{"aigw-echo"}, 0, nil)
	b.worker(b.config("w1", 2), nil)
	for _, c := range []struct {
		name   string
		mod    func(*job.Job)
		outbox []job.State
	}{
		{"claimed", nil, nil},
		{"no hint", func(j *job.Job) { j.Version = "" }, nil},
		{"running webhook", func(j *job.Job) {
			j.Webhook = &job.Webhook{URL: "http://127.0.0.1:1/hook", Events: []string{"running", "succeeded"}}
		}, []job.State{job.Running, job.Succeeded}},
	} {
		id := b.submit("echo", `{"message":"hi","sleep_ms":50}`, c.mod)
		j := b.waitState(id, 15*time.Second, job.Succeeded)
		if string(j.Output) != `{"message":"hi"}` || j.Attempt != 1 || j.Worker != "w1" {
			t.Fatalf("%s: record: output %s attempt %d worker %q", c.name, j.Output, j.Attempt, j.Worker)
		}
		var outbox []job.State
		for _, n := range j.Outbox {
			outbox = append(outbox, n.State)
		}
		if !slices.Equal(outbox, c.outbox) {
			t.Fatalf("%s: outbox %v, want %v", c.name, outbox, c.outbox)
		}
		var seq []string
		for _, e := range b.events(id) {
			s := string(e.Type)
			if e.Type == events.TypeState {
				s += ":" + string(stateOf(t, e).State)
			}
			if len(seq) == 0 || seq[len(seq)-1] != s {
				seq = append(seq, s)
			}
		}
		want := "state:queued state:running progress output state:succeeded"
		if got := strings.Join(seq, " "); got != want {
			t.Fatalf("%s: events %q, want %q", c.name, got, want)
		}
	}
}

func TestProgressAndLogEvents(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.algo("progress", []string{"./progress"}, 0, nil)
	b.worker(b.config("w1", 1), nil)
	id := b.submit("progress", `{"x":1}`, nil)
	j := b.waitState(id, 15*time.Second, job.Succeeded)
	if string(j.Output) != `{"x":1}` || !strings.Contains(j.Log, "plain log line") {
		t.Fatalf("output %s log %q", j.Output, j.Log)
	}
	var progress []float64
	var lines []string
	for _, e := range b.events(id) {
		switch e.Type {
		case events.TypeProgress:
			var p events.Progress
			_ = json.Unmarshal(e.Data, &p)
			progress = append(progress, p.Progress)
		case events.TypeLog:
			var l events.Log
			_ = json.Unmarshal(e.Data, &l)
			lines = append(lines, l.Lines...)
		}
	}
	if len(progress) != 2 || progress[0] != 0.25 || progress[1] != 0.75 || strings.Join(lines, "|") != "plain log line" {
		t.Fatalf("progress %v, log lines %q", progress, lines)
	}
}

func TestMissingCommandThenCarriesOn(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.algo("missing", []string{"aigw-no-such-program"}, 0, nil)
	b.algo("echo", []string{"aigw-echo"}, 0, nil)
	b.worker(b.config("w1", 1), nil)
	id := b.submit("missing", `{}`, nil)
	j := b.waitState(id, 15*time.Second, job.Failed)
	if j.Error == nil || j.Error.Code != "runtime_error" || !strings.Contains(j.Error.Message, "aigw-no-such-program") {
		t.Fatalf("error %+v", j.Error)
	}
	id = b.submit("echo", `{"message":"still here"}`, nil)
	b.waitState(id, 15*time.Second, job.Succeeded)
}

func TestBadOutput(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.algo("nonjson", []string{"./nonjson"}, 2, nil)
	b.algo("big", []string{"./big"}, 2, nil)
	b.worker(b.config("w1", 2), nil)
	for _, name := range []string{"nonjson", "big"} {
		id := b.submit(name, `{}`, func(j *job.Job) { j.MaxRetries = 2 })
		j := b.waitState(id, 15*time.Second, job.Failed)
		if j.Error == nil || j.Error.Code != "bad_output" || j.Attempt != 1 {
			t.Errorf("%s: attempt %d error %+v", name, j.Attempt, j.Error)
		}
	}
}

func TestUnknownAlgorithm(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.worker(b.config("w1", 1), nil)
	id := b.submit("nosuch", `{}`, func(j *job.Job) { j.MaxRetries = 3 })
	j := b.waitState(id, 15*time.Second, job.Failed)
	if j.Error == nil || j.Error.Code != "unknown_algorithm" || j.Attempt != 1 {
		t.Fatalf("attempt %d error %+v", j.Attempt, j.Error)
	}
}

func TestTimeoutKillsProcessGroup(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.algo("sleeper", []string{"./sleeper"}, 0, nil)
	b.worker(b.config("w1", 1), nil)
	id := b.submit("sleeper", `{}`, func(j *job.Job) { j.ExecutionTimeoutMS = 700 })
	pid := b.pid(id)
	j := b.waitState(id, 15*time.Second, job.Failed)
	if j.Error == nil || j.Error.Code != "timeout" || j.Attempt != 1 {
		t.Fatalf("attempt %d error %+v", j.Attempt, j.Error)
	}
	gone(t, pid)
}

func TestCancelWhileRunning(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.algo("sleeper", []string{"./sleeper"}, 0, nil)
	b.worker(b.config("w1", 1), nil)
	id := b.submit("sleeper", `{}`, func(j *job.Job) { j.MaxRetries = 3 })
	pid := b.pid(id)
	asked := time.Now()
	if err := b.ev.RequestCancel(context.Background(), id); err != nil {
		t.Fatal(err)
	}
	j := b.waitState(id, 10*time.Second, job.Canceled)
	// Reaction within a second; the SIGTERM → SIGKILL grace (300 ms here) comes on top.
	if took := time.Since(asked); took > 1500*time.Millisecond {
		t.Errorf("canceled after %s", took)
	}
	if j.Attempt != 1 {
		t.Errorf("attempt %d: canceled runs are not retried", j.Attempt)
	}
	gone(t, pid)
	time.Sleep(500 * time.Millisecond)
	if j, _ := b.jobs.GetByID(context.Background(), id); j.State != job.Canceled {
		t.Fatalf("state %s after cancel", j.State)
	}
}

func TestRetriesWithBackoff(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.algo("fail", []string{"./fail"}, 2, nil)
	b.worker(b.config("w1", 1), nil)
	id := b.submit("fail", `{}`, func(j *job.Job) { j.MaxRetries = 2 })
	j := b.waitState(id, 20*time.Second, job.Failed)
	if j.Attempt != 3 || j.Error == nil || j.Error.Code != "runtime_error" || !strings.Contains(j.Error.Message, "something broke") {
		t.Fatalf("attempt %d error %+v", j.Attempt, j.Error)
	}
	var running []time.Time
	for _, e := range b.events(id) {
		if e.Type == events.TypeState && stateOf(t, e).State == job.Running {
			running = append(running, stateOf(t, e).At)
		}
	}
	if len(running) != 3 {
		t.Fatalf("%d running events, want 3", len(running))
	}
	g1, g2 := running[1].Sub(running[0]), running[2].Sub(running[1])
	if g1 < 150*time.Millisecond || g2 <= g1 {
		t.Errorf("retry gaps %s, %s: want growing gaps from ~200ms", g1, g2)
	}
	dl, err := b.q.DeadLetters(context.Background(), b.pool, 10)
	if err != nil || len(dl) != 1 || dl[0].JobID != id || !strings.Contains(dl[0].Reason, "runtime_error") {
		t.Fatalf("dead letters %+v %v", dl, err)
	}
}

func TestArtifactsInGridFS(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.algo("artifact", []string{"./artifact"}, 0, nil)
	b.worker(b.config("w1", 1), nil)
	id := b.submit("artifact", `{}`, nil)
	j := b.waitState(id, 15*time.Second, job.Succeeded)
	if len(j.Artifacts) != 2 {
		t.Fatalf("artifacts %+v", j.Artifacts)
	}
	want := map[string]string{"result.txt": "hello artifact\n", "sub/data.bin": "abc"}
	for _, a := range j.Artifacts {
		data, err := b.arts.Open(context.Background(), a.FileID)
		if err != nil {
			t.Fatal(err)
		}
		if string(data) != want[a.Name] || a.Size != int64(len(data)) || len(a.SHA256) != 64 {
			t.Errorf("artifact %+v: content %q", a, data)
		}
	}
}

func TestGPUAssignment(t *testing.T) {
	t.Parallel()
	b := setup(t)
	gpus, err := gpu.Discover(context.Background(), filepath.Join("testdata", "nvidia-smi"))
	if err != nil || len(gpus) != 4 {
		t.Fatalf("fake nvidia-smi: %v %v", gpus, err)
	}
	b.algo("env2", []string{"./env"}, 0, func(d *algorithm.Definition) { d.Resources.GPUs = 2 })
	b.algo("env0", []string{"./env"}, 0, nil)
	a, _ := b.worker(b.config("w1", 0), gpus)
	if a.Slots() != 4 {
		t.Errorf("slots %d, want one per GPU", a.Slots())
	}
	var out struct{ Cuda, Nvidia string }
	id := b.submit("env2", `{}`, nil)
	j := b.waitState(id, 15*time.Second, job.Succeeded)
	if err := json.Unmarshal(j.Output, &out); err != nil {
		t.Fatal(err)
	}
	if idx := strings.Split(out.Cuda, ","); len(idx) != 2 || out.Cuda != out.Nvidia || idx[0] == idx[1] {
		t.Fatalf("CUDA_VISIBLE_DEVICES %q NVIDIA_VISIBLE_DEVICES %q", out.Cuda, out.Nvidia)
	}
	// Metered: 2 GPUs and 1 slot for the attempt's wall time (started_at to finished_at, give or take the write).
	if u, wall := j.Usage, j.FinishedAt.Sub(*j.StartedAt).Seconds(); u == nil || u.CPUSeconds <= 0 ||
		u.GPUSeconds != 2*u.CPUSeconds || u.CPUSeconds > wall+0.5 || u.CPUSeconds < wall-0.5 {
		t.Fatalf("usage %+v, wall %.3fs", u, wall)
	}
	id = b.submit("env0", `{}`, nil)
	j = b.waitState(id, 15*time.Second, job.Succeeded)
	if err := json.Unmarshal(j.Output, &out); err != nil || out.Cuda != "" {
		t.Fatalf("no GPUs: CUDA_VISIBLE_DEVICES %q", out.Cuda)
	}
	if j.Usage == nil || j.Usage.GPUSeconds != 0 || j.Usage.CPUSeconds <= 0 {
		t.Fatalf("no GPUs: usage %+v", j.Usage)
	}
	ws, err := b.reg.Workers(context.Background(), b.pool)
	if err != nil || len(ws) != 1 || len(ws[0].GPUs) != 4 || ws[0].GPUs[3].UUID != gpus[3].UUID {
		t.Fatalf("registry %+v %v", ws, err)
	}
}

// TestCPUFallback: without GPUs, a GPU job is unschedulable, unless the worker
// falls back to its CPU; then it runs with no GPU visible.
func TestCPUFallback(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.algo("env1", []string{"./env"}, 0, func(d *algorithm.Definition) { d.Resources.GPUs = 1 })
	cfg := b.config("w1", 1)
	cfg.CPUFallback = true
	b.worker(cfg, nil)
	j := b.waitState(b.submit("env1", `{}`, nil), 15*time.Second, job.Succeeded)
	var out struct{ Cuda, Nvidia string }
	if err := json.Unmarshal(j.Output, &out); err != nil || out.Cuda != "" || out.Nvidia != "" {
		t.Fatalf("CPU fallback: %s %v", j.Output, err)
	}

	strict := setup(t)
	strict.algo("env1", []string{"./env"}, 0, func(d *algorithm.Definition) { d.Resources.GPUs = 1 })
	strict.worker(strict.config("w2", 1), nil)
	j = strict.waitState(strict.submit("env1", `{}`, nil), 15*time.Second, job.Failed)
	if j.Error == nil || j.Error.Code != "unschedulable" {
		t.Fatalf("without fallback: %+v", j.Error)
	}
}

func TestHTTPRuntime(t *testing.T) {
	t.Parallel()
	b := setup(t)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		switch r.URL.Path {
		case "/json":
			_, _ = w.Write(body)
		case "/v2/models/m/infer":
			var req struct {
				Inputs []struct {
					Name, Datatype string
					Shape          []int
					Data           []string
				}
			}
			if err := json.Unmarshal(body, &req); err != nil || len(req.Inputs) != 1 || req.Inputs[0].Name != "input" ||
				req.Inputs[0].Datatype != "BYTES" || len(req.Inputs[0].Shape) != 1 || req.Inputs[0].Data[0] != `{"q":1}` {
				http.Error(w, `{"error":"bad v2 request"}`, 400)
				return
			}
			_, _ = w.Write([]byte(`{"model_name":"m","outputs":[{"name":"output","shape":[1],"datatype":"BYTES","data":["ok"]}]}`))
		case "/bad":
			w.WriteHeader(400)
			_, _ = w.Write([]byte(`{"error":{"code":"invalid","message":"field q is wrong"}}`))
		default:
			http.Error(w, "overloaded", 503)
		}
	}))
	t.Cleanup(srv.Close)
	for name, path := range map[string]string{"json": "/json", "v2": "/v2/models/m/infer", "bad": "/bad", "down": "/down"} {
		retries := 1
		if _, _, err := b.algos.Put(context.Background(), algorithm.Definition{Name: "h-" + name, Version: "1.0.0", Pool: b.pool,
			Runtime:    algorithm.Runtime{Type: algorithm.HTTP, URL: srv.URL + path, Protocol: map[bool]string{true: "v2"}[name == "v2"]},
			MaxRetries: &retries}); err != nil {
			t.Fatal(err)
		}
	}
	b.worker(b.config("w1", 4), nil)
	retry := func(j *job.Job) { j.MaxRetries = 1 }
	ok := b.submit("h-json", `{"q":1}`, retry)
	v2 := b.submit("h-v2", `{"q":1}`, retry)
	bad := b.submit("h-bad", `{"q":1}`, retry)
	down := b.submit("h-down", `{"q":1}`, retry)
	if j := b.waitState(ok, 15*time.Second, job.Succeeded); string(j.Output) != `{"q":1}` {
		t.Errorf("json: output %s", j.Output)
	}
	if j := b.waitState(v2, 15*time.Second, job.Succeeded); !strings.Contains(string(j.Output), `"outputs"`) {
		t.Errorf("v2: output %s", j.Output)
	}
	if j := b.waitState(bad, 15*time.Second, job.Failed); j.Attempt != 1 || j.Error.Code != "http_error" || !strings.Contains(j.Error.Message, "field q is wrong") {
		t.Errorf("4xx: attempt %d error %+v", j.Attempt, j.Error)
	}
	if j := b.waitState(down, 15*time.Second, job.Failed); j.Attempt != 2 || j.Error.Code != "http_error" || !strings.Contains(j.Error.Message, "overloaded") {
		t.Errorf("5xx: attempt %d error %+v", j.Attempt, j.Error)
	}
}

func TestHeartbeatRegistration(t *testing.T) {
	t.Parallel()
	b := setup(t)
	cfg := b.config("w1", 3)
	cfg.Labels = map[string]string{"zone": "a"}
	_, stop := b.worker(cfg, nil)
	testwait.Eventually(t, 5*time.Second, func() bool {
		ws, err := b.reg.Workers(context.Background(), b.pool)
		if err != nil {
			t.Fatal(err)
		}
		if len(ws) != 1 {
			return false
		}
		if w := ws[0]; w.Node != "w1" || w.Slots != 3 || w.Labels["zone"] != "a" || w.ExpiresAt.Sub(w.HeartbeatAt) != 2*cfg.Heartbeat {
			t.Fatalf("registered %+v", w)
		}
		return true
	}, "worker registered")
	stop()
	if ws, err := b.reg.Workers(context.Background(), b.pool); err != nil || len(ws) != 0 {
		t.Fatalf("after a clean exit: %+v %v", ws, err)
	}
}

func TestDrainFinishesRuns(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.algo("echo", []string{"aigw-echo"}, 0, nil)
	a, stop := b.worker(b.config("w1", 1), nil)
	id := b.submit("echo", `{"message":"m","sleep_ms":800}`, nil)
	b.waitState(id, 10*time.Second, job.Running)
	stopped := make(chan struct{})
	go func() { stop(); close(stopped) }()
	time.Sleep(100 * time.Millisecond)
	if a.Healthy() == nil {
		t.Error("healthy while draining")
	}
	select {
	case <-stopped:
	case <-time.After(10 * time.Second):
		t.Fatal("drain did not end")
	}
	if j, _ := b.jobs.GetByID(context.Background(), id); j.State != job.Succeeded {
		t.Fatalf("state %s after drain, want succeeded", j.State)
	}
}

func TestDrainHandsBackAfterGrace(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.algo("sleeper", []string{"./sleeper"}, 0, nil)
	cfg := b.config("w1", 1)
	cfg.ShutdownGrace = 300 * time.Millisecond
	_, stop := b.worker(cfg, nil)
	id := b.submit("sleeper", `{}`, nil)
	pid := b.pid(id)
	stop()
	gone(t, pid)
	j, _ := b.jobs.GetByID(context.Background(), id)
	if j.State != job.Queued || j.Attempt != 2 || j.Error == nil || j.Error.Code != "shutdown" {
		t.Fatalf("handed back: state %s attempt %d error %+v", j.State, j.Attempt, j.Error)
	}
	if in, err := b.q.Contains(context.Background(), b.pool, id); err != nil || !in {
		t.Fatalf("handed-back job not in the queue: %v %v", in, err)
	}
	// Another worker runs it: it was handed back, not lost.
	b.worker(b.config("w2", 1), nil)
	b.wait(id, 10*time.Second, "running on w2", func(j *job.Job) bool { return j.State == job.Running && j.Worker == "w2" })
	if err := b.ev.RequestCancel(context.Background(), id); err != nil {
		t.Fatal(err)
	}
	b.waitState(id, 10*time.Second, job.Canceled)
}

func TestChildEnvironment(t *testing.T) {
	// The child does not see the worker's own AIGW_ settings (credentials).
	t.Setenv("AIGW_REDIS_PASSWORD", "secret")
	b := setup(t)
	b.algo("env", []string{"./env"}, 0, func(d *algorithm.Definition) { d.Env["RANK"] = "from-definition" })
	b.worker(b.config("w1", 1), nil)
	id := b.submit("env", `{}`, nil)
	j := b.waitState(id, 15*time.Second, job.Succeeded)
	if !strings.Contains(string(j.Output), `"rank":"from-definition"`) {
		t.Fatalf("definition env not passed: %s", j.Output)
	}
	if _, err := os.Stat(filepath.Join(b.pidDir, id+".from-definition")); err != nil {
		t.Fatal(err)
	}
}
