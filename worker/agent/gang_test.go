package agent

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/aigw/aigw/internal/algorithm"
	"github.com/aigw/aigw/internal/job"
	"github.com/aigw/aigw/internal/testwait"
)

type assignment struct {
	Rank, World, Addr, Port string
}

func (b *bundle) assignments(id string, n int) []assignment {
	b.t.Helper()
	out := make([]assignment, n)
	for rank := range n {
		data, err := os.ReadFile(filepath.Join(b.pidDir, id+"."+strconv.Itoa(rank)))
		if err != nil {
			b.t.Fatalf("rank %d of job %s: %v", rank, id, err)
		}
		if err := json.Unmarshal(data, &out[rank]); err != nil {
			b.t.Fatal(err)
		}
	}
	return out
}

func TestGangStartsOnlyWhenAllSlotsAreFree(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.algo("sleeper", []string{"./sleeper"}, 0, nil)
	b.algo("genv", []string{"./env"}, 0, nil)
	b.worker(b.config("w1", 2), nil)
	b.worker(b.config("w2", 2), nil)
	s1 := b.submit("sleeper", `{}`, nil)
	s2 := b.submit("sleeper", `{}`, nil)
	b.pid(s1)
	b.pid(s2)
	id := b.submit("genv", `{}`, func(j *job.Job) { j.GangSize = 3 })
	time.Sleep(2 * time.Second)
	j, err := b.jobs.GetByID(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	if j.State != job.Queued || j.Attempt != 1 {
		t.Fatalf("gang of 3 with 2 free slots: state %s attempt %d", j.State, j.Attempt)
	}
	if _, err := os.Stat(filepath.Join(b.pidDir, id+".1")); err == nil {
		t.Fatal("a gang member started with too few free slots")
	}
	if err := b.ev.RequestCancel(context.Background(), s1); err != nil {
		t.Fatal(err)
	}
	b.waitState(s1, 10*time.Second, job.Canceled)
	j = b.waitState(id, 20*time.Second, job.Succeeded)
	as := b.assignments(id, 3)
	for rank, a := range as {
		if a.Rank != strconv.Itoa(rank) || a.World != "3" || a.Addr != "127.0.0.1" || a.Port != as[0].Port || a.Port == "" || a.Port == "0" {
			t.Errorf("rank %d: %+v (rank 0: %+v)", rank, a, as[0])
		}
	}
	var out assignment
	if err := json.Unmarshal(j.Output, &out); err != nil || out.Rank != "0" {
		t.Errorf("output %s: want rank 0's", j.Output)
	}
	if j.Attempt != 1 {
		t.Errorf("attempt %d", j.Attempt)
	}
	running := 0
	for _, e := range b.events(id) {
		if e.Type == "state" && stateOf(t, e).State == job.Running {
			running++
		}
	}
	if running != 1 {
		t.Errorf("%d running transitions, want 1", running)
	}
	if err := b.ev.RequestCancel(context.Background(), s2); err != nil {
		t.Fatal(err)
	}
	b.waitState(s2, 10*time.Second, job.Canceled)
}

func TestCompetingGangsBothFinish(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.algo("genv", []string{"./env"}, 0, func(d *algorithm.Definition) { d.Env["SLEEP"] = "0.5" })
	b.worker(b.config("w1", 2), nil)
	b.worker(b.config("w2", 2), nil)
	g1 := b.submit("genv", `{}`, func(j *job.Job) { j.GangSize = 3 })
	g2 := b.submit("genv", `{}`, func(j *job.Job) { j.GangSize = 3 })
	for _, id := range []string{g1, g2} {
		j := b.waitState(id, 40*time.Second, job.Succeeded)
		if j.Attempt != 1 {
			t.Errorf("job %s attempt %d", id, j.Attempt)
		}
		b.assignments(id, 3)
	}
}

func TestGangMemberFailureFailsTheGang(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.algo("gfail", []string{"sh", "-c", `if [ "$RANK" = 2 ]; then echo "rank 2 broke" >&2; exit 1; fi; exec sleep 1000`}, 0, nil)
	b.worker(b.config("w1", 2), nil)
	b.worker(b.config("w2", 2), nil)
	id := b.submit("gfail", `{}`, func(j *job.Job) { j.GangSize = 3 })
	j := b.waitState(id, 20*time.Second, job.Failed)
	if j.Error == nil || j.Error.Code != "runtime_error" || j.Attempt != 1 {
		t.Fatalf("attempt %d error %+v", j.Attempt, j.Error)
	}
	// The other members were stopped: all slots come free again.
	b.algo("echo", []string{"aigw-echo"}, 0, nil)
	var ids []string
	for range 4 {
		ids = append(ids, b.submit("echo", `{"message":"x","sleep_ms":1500}`, nil))
	}
	n := 0
	if !testwait.Poll(10*time.Second, func() bool {
		n = 0
		for _, id := range ids {
			if j, _ := b.jobs.GetByID(context.Background(), id); j.State == job.Running || j.State == job.Succeeded {
				n++
			}
		}
		return n == 4
	}) {
		t.Fatalf("only %d of 4 slots free after the gang failed", n)
	}
}
