package agent

import (
	"context"
	"io"
	"testing"
	"time"

	"github.com/aigw/aigw/internal/events"
	"github.com/aigw/aigw/internal/job"
	"github.com/aigw/aigw/internal/objstore"
	"github.com/aigw/aigw/internal/objstore/objstoretest"
	"github.com/aigw/aigw/internal/testwait"
	"github.com/aigw/aigw/worker/internal/artifacts"
)

// A run's files go to the object store; a store that is down when they are
// stored holds the job in running (the worker retries) and, once it is back,
// the job succeeds once, in its first attempt, with every file stored.
func TestArtifactsInObjectStoreSurviveAnOutage(t *testing.T) {
	t.Parallel()
	b := setup(t)
	direct, cfg := objstoretest.Store(t)
	proxy, cfg := objstoretest.Flaky(t, cfg)
	obj, err := objstore.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	b.arts = artifacts.NewObjects(obj, 1<<20)
	b.arts.RetryFor = time.Minute
	b.algo("artifact", []string{"./artifact"}, 2, nil)
	b.worker(b.config("w1", 1), nil)
	id := b.submit("artifact", `{}`, func(j *job.Job) { j.MaxRetries = 2 })

	testwait.Eventually(t, 20*time.Second, func() bool { return proxy.Drops() >= 3 }, "the worker's tries against the store that is down")
	if j, err := b.jobs.GetByID(context.Background(), id); err != nil || j.State != job.Running || j.Attempt != 1 {
		t.Fatalf("while the store is down: %+v %v; want running, attempt 1", j, err)
	}
	proxy.SetDown(false)
	j := b.waitState(id, 30*time.Second, job.Succeeded)
	if j.Attempt != 1 || len(j.Artifacts) != 2 {
		t.Fatalf("after the outage: attempt %d, artifacts %+v", j.Attempt, j.Artifacts)
	}
	want := map[string]string{"result.txt": "hello artifact\n", "sub/data.bin": "abc"}
	for _, a := range j.Artifacts {
		if a.Key != artifacts.Key(id, 1, a.Name) || a.FileID != "" {
			t.Errorf("artifact %+v: want key %s", a, artifacts.Key(id, 1, a.Name))
		}
		body, _, err := direct.Get(context.Background(), a.Key)
		if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(body)
		body.Close()
		if string(data) != want[a.Name] || a.Size != int64(len(data)) || len(a.SHA256) != 64 {
			t.Errorf("artifact %+v: content %q", a, data)
		}
	}
	terminal := 0
	for _, e := range b.events(id) {
		if e.Type == events.TypeState && stateOf(t, e).State.Terminal() {
			terminal++
		}
	}
	if terminal != 1 {
		t.Fatalf("%d terminal state events, want 1", terminal)
	}
}
