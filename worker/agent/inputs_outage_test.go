package agent

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/aigw/aigw/internal/egress"
	"github.com/aigw/aigw/internal/events"
	"github.com/aigw/aigw/internal/job"
	"github.com/aigw/aigw/internal/objstore"
	"github.com/aigw/aigw/internal/objstore/objstoretest"
	"github.com/aigw/aigw/internal/uploads"
	"github.com/aigw/aigw/worker/internal/artifacts"
	"github.com/aigw/aigw/worker/internal/inputs"
)

// The object store down while a job's input file is fetched: the attempt
// fails as one to retry (the outage is not the file's fault), the job is
// retried and, once the store is back, succeeds with the file's SHA-256; it
// ends once.
func TestInputFetchDuringAStoreOutageIsRetried(t *testing.T) {
	t.Parallel()
	b := setup(t)
	direct, cfg := objstoretest.Store(t)
	proxy, cfg := objstoretest.Flaky(t, cfg)
	flaky, err := objstore.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	data := []byte("an input file fetched through an outage")
	id := job.NewID()
	if _, err := direct.Put(context.Background(), uploads.Key("t1", id), bytes.NewReader(data), int64(len(data))); err != nil {
		t.Fatal(err)
	}
	b.arts = artifacts.NewObjects(direct, 1<<20)
	cfg2 := b.config("w1", 1)
	cfg2.BinDir = sha256BinDir(t)
	cfg2.WorkDir = runDir(t)
	b.algo("sha256", []string{"aigw-sha256"}, 8, nil)
	startWorker(t, b, cfg2, nil, &inputs.Fetcher{Store: flaky, HTTP: egress.NewGuard(nil).Client()})

	jid := b.submit("sha256", `{"files":[{"$file":"`+id+`","size":`+itoa(len(data))+`,"sha256":"`+hexSum(data)+`"}]}`,
		func(j *job.Job) { j.MaxRetries = 8 })
	j := b.wait(jid, 30*time.Second, "a second attempt", func(j *job.Job) bool { return j.Attempt >= 2 || j.State.Terminal() })
	if j.State.Terminal() {
		t.Fatalf("while the store is down: %s in attempt %d (%+v), want a retry", j.State, j.Attempt, j.Error)
	}
	proxy.SetDown(false)
	j = b.waitState(jid, 30*time.Second, job.Succeeded)
	if j.Attempt < 2 || !bytes.Contains(j.Output, []byte(hexSum(data))) {
		t.Fatalf("after the outage: attempt %d, output %s", j.Attempt, j.Output)
	}
	terminal := 0
	for _, e := range b.events(jid) {
		if e.Type == events.TypeState && stateOf(t, e).State.Terminal() {
			terminal++
		}
	}
	if terminal != 1 {
		t.Fatalf("%d terminal state events, want 1", terminal)
	}
}
