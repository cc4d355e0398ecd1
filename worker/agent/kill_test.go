package agent

import (
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/aigw/aigw/internal/events"
	"github.com/aigw/aigw/internal/job"
	"github.com/aigw/aigw/internal/queue"
	"github.com/aigw/aigw/internal/registry"
	"github.com/aigw/aigw/internal/testenv"
	"github.com/aigw/aigw/internal/testlog"
	"github.com/aigw/aigw/internal/testwait"
)

// TestWorkerSIGKILLTakeover kills a real aigw-worker process mid-run: after the
// lease, another worker takes the job over and finishes it exactly once.
func TestWorkerSIGKILLTakeover(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.lease = 2 * time.Second
	b.q = queue.New(b.rdb, queue.Config{Lease: b.lease})
	b.algo("echo", []string{"aigw-echo"}, 0, nil)
	// The process reads its configuration as in production: run as root (as in
	// CI), it starts runs as nobody, who must reach the programs and the run
	// directories (t.TempDir and MkdirTemp make them 0700).
	workDir := t.TempDir()
	for _, p := range []string{binDir, filepath.Dir(workDir), workDir} {
		if err := os.Chmod(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(filepath.Join(binDir, "aigw-worker"))
	cmd.Env = append(os.Environ(),
		"AIGW_POOL="+b.pool, "AIGW_REDIS_ADDRS="+joinAddrs(testenv.RedisAddrs(t)), "AIGW_MONGO_URI="+testenv.MongoURI(t),
		"AIGW_MONGO_DB="+b.db.Name(), "AIGW_SLOTS=1", "AIGW_NODE_NAME=w-killed", "AIGW_METRICS_ADDR=off",
		"AIGW_BIN_DIR="+binDir, "AIGW_ALGORITHMS_DIR=testdata", "AIGW_HEARTBEAT=300ms", "AIGW_LEASE=2s",
		"AIGW_NVIDIA_SMI=/nonexistent/nvidia-smi", "AIGW_WORK_DIR="+workDir)
	stderr := &lockedBuffer{}
	cmd.Stderr = io.MultiWriter(testlog.Writer(t), stderr)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() { _ = cmd.Process.Kill(); <-exited })
	id := b.submit("echo", `{"message":"survivor","sleep_ms":3000}`, nil)
	// The worker process opens the stores this test has opened (their indexes
	// exist): it must start on the dev store as on MongoDB.
	var j *job.Job
	if !testwait.Poll(60*time.Second, func() bool {
		var err error
		if j, err = b.jobs.GetByID(context.Background(), id); err != nil {
			t.Fatal(err)
		}
		if j.State == job.Running && j.Worker == "w-killed" {
			return true
		}
		select {
		case <-exited:
			t.Fatalf("aigw-worker exited before taking the job; its log:\n%s", stderr)
		default:
		}
		return false
	}) {
		t.Fatalf("aigw-worker has not started the job in 60 s (state %s, worker %q); its log:\n%s", j.State, j.Worker, stderr)
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-exited
	killed := time.Now()

	// The dead worker leaves the registry: its entry expires 2×heartbeat after
	// its last beat (TestHeartbeatRegistration checks that exactly); here the
	// polling gets room for a loaded machine.
	var ws []registry.Worker
	if !testwait.Poll(2*300*time.Millisecond+10*time.Second, func() bool {
		var err error
		if ws, err = b.reg.Workers(context.Background(), b.pool); err != nil {
			t.Fatal(err)
		}
		return len(ws) == 0
	}) {
		t.Fatalf("killed worker still registered after %s: %+v", time.Since(killed), ws)
	}

	b.worker(b.config("w2", 1), nil)
	j = b.waitState(id, 30*time.Second, job.Succeeded)
	if j.Attempt != 2 || j.Worker != "w2" || string(j.Output) != `{"message":"survivor"}` {
		t.Fatalf("attempt %d worker %q output %s", j.Attempt, j.Worker, j.Output)
	}
	time.Sleep(time.Second)
	terminal, lost := 0, false
	for _, e := range b.events(id) {
		if e.Type != events.TypeState {
			continue
		}
		s := stateOf(t, e)
		if s.State.Terminal() {
			terminal++
		}
		if s.State == job.Queued && s.Error != nil && s.Error.Code == "lost" && s.Attempt == 2 {
			lost = true
		}
	}
	if terminal != 1 || !lost {
		t.Fatalf("%d terminal state events (want 1), lost attempt recorded: %v", terminal, lost)
	}
	// The entry is acknowledged after the record's transition.
	if !testwait.Poll(5*time.Second, func() bool {
		in, err := b.q.Contains(context.Background(), b.pool, id)
		return err == nil && !in
	}) {
		t.Fatal("finished job still in the queue")
	}
}

func joinAddrs(addrs []string) string {
	out := ""
	for i, a := range addrs {
		if i > 0 {
			out += ","
		}
		out += a
	}
	return out
}

type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
