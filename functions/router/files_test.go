package router

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aigw/aigw/internal/job"
	"github.com/aigw/aigw/internal/jobstore"
	"github.com/aigw/aigw/internal/lifecycle"
	"github.com/aigw/aigw/internal/objstore/objstoretest"
)

// A finished job's artifacts in the object store each carry a presigned URL
// that downloads the file with no other credential until url_expires_at; the
// job's record keeps no URL; a GridFS artifact has none.
func TestArtifactsHavePresignedURLs(t *testing.T) {
	t.Parallel()
	obj, s3 := objstoretest.Store(t)
	cfg := testConfig()
	cfg.S3 = s3
	cfg.ArtifactURLTTL = 2 * time.Minute
	e := setup(t, cfg)
	e.register(t)
	j := e.submit(t, `{"input":{"message":"hi"}}`)

	w := e.worker(t)
	d := w.take(t, 5*time.Second)
	if d == nil || d.JobID != j.ID {
		t.Fatalf("took %+v, want %s", d, j.ID)
	}
	running := w.start(t, d)
	key := "artifacts/" + j.ID + "/1/plots/loss.csv"
	content := []byte("step,loss\n1,0.5\n")
	if _, err := obj.Put(e.ctx, key, bytes.NewReader(content), int64(len(content))); err != nil {
		t.Fatal(err)
	}
	arts := []job.Artifact{{Name: "plots/loss.csv", Key: key, Size: int64(len(content)), SHA256: "x"}, {Name: "old.bin", FileID: "65f0c0ffee", Size: 1}}
	if _, err := w.life.Succeed(e.ctx, running, lifecycle.Result{Output: []byte(`{}`), Artifacts: arts}); err != nil {
		t.Fatal(err)
	}

	var got struct {
		State     string `json:"state"`
		Artifacts []struct {
			Name         string     `json:"name"`
			FileID       string     `json:"file_id"`
			URL          string     `json:"url"`
			URLExpiresAt *time.Time `json:"url_expires_at"`
		} `json:"artifacts"`
	}
	before := time.Now()
	e.want(t, e.do(t, "GET", "/v1/jobs/"+j.ID, e.token, ""), http.StatusOK).decode(t, &got)
	if got.State != "succeeded" || len(got.Artifacts) != 2 {
		t.Fatalf("job %+v", got)
	}
	a := got.Artifacts[0]
	if a.URL == "" || a.URLExpiresAt == nil || a.URLExpiresAt.Before(before.Add(time.Minute)) || a.URLExpiresAt.After(before.Add(2*time.Minute+time.Second)) {
		t.Fatalf("artifact %+v: want a URL for about 2 minutes", a)
	}
	if !strings.HasPrefix(a.URL, s3.Endpoint+"/"+s3.Bucket+"/") {
		t.Fatalf("URL %s is not on the store's endpoint", a.URL)
	}
	resp, err := http.Get(a.URL)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !bytes.Equal(body, content) {
		t.Fatalf("GET the artifact's URL: %d %q", resp.StatusCode, body)
	}
	if cd := resp.Header.Get("Content-Disposition"); !strings.Contains(cd, `filename="loss.csv"`) {
		t.Fatalf("Content-Disposition %q", cd)
	}
	if g := got.Artifacts[1]; g.URL != "" || g.FileID != "65f0c0ffee" {
		t.Fatalf("GridFS artifact %+v: want its file id and no URL", g)
	}
	// The list serves the same URLs; the record holds none.
	var list struct {
		Jobs []struct {
			Artifacts []struct {
				URL string `json:"url"`
			} `json:"artifacts"`
		} `json:"jobs"`
	}
	e.want(t, e.do(t, "GET", "/v1/jobs?state=succeeded", e.token, ""), http.StatusOK).decode(t, &list)
	if len(list.Jobs) != 1 || list.Jobs[0].Artifacts[0].URL == "" {
		t.Fatalf("list %+v", list)
	}
	rec, err := e.jobs.GetByID(e.ctx, j.ID)
	if err != nil || rec.Artifacts[0].URL != "" || rec.Artifacts[0].Key != key {
		t.Fatalf("record %+v %v", rec.Artifacts, err)
	}
}

// runningJob serves a router, submits an echo job and starts it on a
// worker: the job as submitted and as started.
func runningJob(t *testing.T) (*env, *worker, jobReply, *job.Job) {
	t.Helper()
	e := setup(t, testConfig())
	e.register(t)
	j := e.submit(t, `{"input":{"message":"hi"}}`)
	w := e.worker(t)
	d := w.take(t, 5*time.Second)
	if d == nil {
		t.Fatal("nothing to take")
	}
	return e, w, j, w.start(t, d)
}

// A purged job answers 410 Gone with its id and when it was purged; the list
// still shows it, with purged_at and without its data.
func TestPurgedJobIsGone(t *testing.T) {
	t.Parallel()
	e, w, j, running := runningJob(t)
	if _, err := w.life.Succeed(e.ctx, running, lifecycle.Result{Output: []byte(`{"message":"hi"}`)}); err != nil {
		t.Fatal(err)
	}
	at := time.Now().UTC().Truncate(time.Millisecond)
	if ok, err := e.jobs.Purge(e.ctx, j.ID, at); err != nil || !ok {
		t.Fatalf("purge: %v %v", ok, err)
	}
	r := e.want(t, e.do(t, "GET", "/v1/jobs/"+j.ID, e.token, ""), http.StatusGone)
	var gone struct {
		Error    struct{ Code, Message string } `json:"error"`
		ID       string                         `json:"id"`
		PurgedAt time.Time                      `json:"purged_at"`
	}
	r.decode(t, &gone)
	if gone.Error.Code != "gone" || gone.ID != j.ID || !gone.PurgedAt.Equal(at) || !strings.Contains(gone.Error.Message, j.ID) {
		t.Fatalf("410 body %s", r.body)
	}
	var list struct {
		Jobs []struct {
			ID       string          `json:"id"`
			PurgedAt *time.Time      `json:"purged_at"`
			Output   json.RawMessage `json:"output"`
		} `json:"jobs"`
	}
	e.want(t, e.do(t, "GET", "/v1/jobs", e.token, ""), http.StatusOK).decode(t, &list)
	if len(list.Jobs) != 1 || list.Jobs[0].PurgedAt == nil || list.Jobs[0].Output != nil {
		t.Fatalf("list %+v", list)
	}
}

// A purged job cannot be retried: its input is gone. The retry answers 410
// and leaves the record as it was, and so does a retry that races the purge
// (the store's compare-and-set refuses a purged record).
func TestPurgedJobCannotBeRetried(t *testing.T) {
	t.Parallel()
	e, w, j, running := runningJob(t)
	if _, err := w.life.Fail(e.ctx, running, lifecycle.Failure{Error: &job.Error{Code: "exit", Message: "exit 1"}}); err != nil {
		t.Fatal(err)
	}
	failed, err := e.jobs.GetByID(e.ctx, j.ID)
	if err != nil || failed.State != job.Failed {
		t.Fatalf("job %+v %v, want failed", failed, err)
	}
	if ok, err := e.jobs.Purge(e.ctx, j.ID, time.Now()); err != nil || !ok {
		t.Fatalf("purge: %v %v", ok, err)
	}
	r := e.want(t, e.do(t, "POST", "/v1/jobs/"+j.ID+"/retry", e.token, ""), http.StatusGone)
	if !strings.Contains(string(r.body), `"gone"`) || !strings.Contains(string(r.body), j.ID) {
		t.Fatalf("410 body %s", r.body)
	}
	// The record fetched before the purge, retried as a racing retry would.
	if _, err := e.jobs.Transition(e.ctx, j.ID, jobstore.Change{From: job.Failed, To: job.Queued, Attempt: failed.Attempt}); !errors.Is(err, jobstore.ErrConflict) {
		t.Fatalf("retry of a purged record in the store: %v, want a conflict", err)
	}
	got, err := e.jobs.GetByID(e.ctx, j.ID)
	if err != nil || got.State != job.Failed || got.PurgedAt == nil || got.Attempt != failed.Attempt {
		t.Fatalf("record after the retries %+v %v", got, err)
	}
}
