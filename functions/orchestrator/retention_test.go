package orchestrator

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/aigw/aigw/internal/events"
	"github.com/aigw/aigw/internal/inputfiles"
	"github.com/aigw/aigw/internal/job"
	"github.com/aigw/aigw/internal/jobstore"
	"github.com/aigw/aigw/internal/lifecycle"
	"github.com/aigw/aigw/internal/objstore"
	"github.com/aigw/aigw/internal/objstore/objstoretest"
	"github.com/aigw/aigw/internal/testenv"
	"github.com/aigw/aigw/internal/testlog"
	"github.com/aigw/aigw/internal/uploads"
)

// Finished jobs past their tenant's retention lose their artifacts (every
// object under their prefix: nothing is left in the store) and their input,
// output and log; the record keeps its state and gets purged_at. Jobs within
// their retention, of a tenant kept for ever, or still running, stay.
func TestPurgeAfterRetention(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := testenv.MongoDB(t)
	jobs, err := jobstore.New(ctx, db, jobstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	obj, _ := objstoretest.Store(t)
	life := lifecycle.New(jobs, events.New(testenv.Redis(t), events.Config{}), testlog.New(t), lifecycle.Backoff{})
	pool := testenv.UniqueName(t, 40)

	finish := func(tenant string) *job.Job {
		t.Helper()
		j, _, err := jobs.Create(ctx, job.Job{Tenant: tenant, Algorithm: "a", Version: "1.0.0", Pool: pool, Input: []byte(`{"x":1}`)})
		if err != nil {
			t.Fatal(err)
		}
		out, err := life.Start(ctx, j, "w1")
		if err != nil {
			t.Fatal(err)
		}
		var arts []job.Artifact
		for _, name := range []string{"a.txt", "sub/b.bin"} {
			key := objstore.ArtifactPrefix(j.ID) + "1/" + name
			if _, err := obj.Put(ctx, key, bytes.NewReader([]byte(name)), int64(len(name))); err != nil {
				t.Fatal(err)
			}
			arts = append(arts, job.Artifact{Name: name, Key: key, Size: int64(len(name))})
		}
		done, err := life.Succeed(ctx, out.Job, lifecycle.Result{Output: []byte(`{"y":2}`), Artifacts: arts, Log: "log"})
		if err != nil {
			t.Fatal(err)
		}
		return done.Job
	}
	short := finish("short")  // 1h retention
	plain := finish("plain")  // the default, 720h
	forever := finish("keep") // 0: for ever
	running, _, _ := jobs.Create(ctx, job.Job{Tenant: "short", Algorithm: "a", Version: "1.0.0", Pool: pool})

	p := &Purger{Jobs: jobs, Objects: obj, GridFS: db.GridFSBucket(options.GridFSBucket().SetName("artifacts")),
		Retention: Retention{Default: 720 * time.Hour, Tenants: map[string]time.Duration{"short": time.Hour, "keep": 0}},
		Now:       func() time.Time { return time.Now().Add(2 * time.Hour) }, Log: testlog.New(t)}
	res, err := p.Purge(ctx)
	if err != nil || res.Purged != 1 || res.Objects != 2 {
		t.Fatalf("purge at +2h: %+v %v; want the short tenant's job and its 2 objects", res, err)
	}
	left, err := obj.List(ctx, objstore.ArtifactPrefix(short.ID))
	if err != nil || len(left) != 0 {
		t.Fatalf("objects left of a purged job: %v %v", left, err)
	}
	got, err := jobs.GetByID(ctx, short.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.PurgedAt == nil || got.State != job.Succeeded || got.Output != nil || got.Input != nil || got.Log != "" || got.Artifacts != nil {
		t.Fatalf("purged record %+v", got)
	}
	for _, j := range []*job.Job{plain, forever} {
		if got, _ := jobs.GetByID(ctx, j.ID); got.PurgedAt != nil || len(got.Artifacts) != 2 {
			t.Fatalf("job of %s purged too early: %+v", j.Tenant, got)
		}
	}

	// A month on: the default's jobs go, the kept tenant's and the running one stay.
	p.Now = func() time.Time { return time.Now().Add(31 * 24 * time.Hour) }
	if res, err := p.Purge(ctx); err != nil || res.Purged != 1 || res.Objects != 2 {
		t.Fatalf("purge at +31d: %+v %v", res, err)
	}
	if got, _ := jobs.GetByID(ctx, plain.ID); got.PurgedAt == nil {
		t.Fatal("the default tenant's job was kept past 720h")
	}
	for _, id := range []string{forever.ID, running.ID} {
		if got, _ := jobs.GetByID(ctx, id); got.PurgedAt != nil {
			t.Fatalf("job %s (%s, %s) purged", id, got.Tenant, got.State)
		}
	}
	if left, _ := obj.List(ctx, objstore.ArtifactPrefix(forever.ID)); len(left) != 2 {
		t.Fatalf("the kept tenant's objects: %v", left)
	}
	// Nothing more to do: a purge is idempotent.
	if res, err := p.Purge(ctx); err != nil || res.Purged != 0 {
		t.Fatalf("second purge: %+v %v", res, err)
	}
}

func TestParseRetentions(t *testing.T) {
	m, err := ParseRetentions("trial=24h, acme=0")
	if err != nil || m["trial"] != 24*time.Hour || m["acme"] != 0 || len(m) != 2 {
		t.Fatalf("%v %v", m, err)
	}
	for _, bad := range []string{"trial", "=1h", "x=-1h", "x=soon"} {
		if _, err := ParseRetentions(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// uploadStores opens the job and upload stores on a fresh database, and an
// object store.
func uploadStores(t *testing.T) (*jobstore.Store, *objstore.Store, *uploads.Store) {
	t.Helper()
	ctx := context.Background()
	db := testenv.MongoDB(t)
	jobs, err := jobstore.New(ctx, db, jobstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	obj, _ := objstoretest.Store(t)
	ups := uploads.New(db)
	if err := ups.EnsureIndexes(ctx); err != nil {
		t.Fatal(err)
	}
	return jobs, obj, ups
}

// Uploads go when their time is up: one no job referenced once the grace
// after its URL's expiry has passed (with its object, or without one when
// it was never sent), one jobs referenced once its tenant's retention has
// passed since the last reference; a tenant kept for ever keeps those. A
// claimed upload can no longer be referenced, and a purge cut short after
// the claim is finished by the next. The bucket is listed after each pass:
// nothing is left behind.
func TestPurgeUploads(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	jobs, obj, ups := uploadStores(t)
	t0 := time.Now()
	upload := func(tenant string, put bool, usedAgo time.Duration) uploads.Upload {
		t.Helper()
		u, err := ups.Create(ctx, tenant, 5, strings.Repeat("a", 64), t0.Add(-4*time.Hour), t0.Add(-3*time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		if put {
			if _, err := obj.Put(ctx, u.Key, strings.NewReader("bytes"), 5); err != nil {
				t.Fatal(err)
			}
		}
		if usedAgo > 0 {
			if u, err = ups.Use(ctx, tenant, u.ID, t0.Add(-usedAgo)); err != nil {
				t.Fatal(err)
			}
		}
		return u
	}
	unused := upload("plain", true, 0)
	neverSent := upload("plain", false, 0)
	short := upload("short", true, 2*time.Hour)  // retention 1h
	plain := upload("plain", true, 2*time.Hour)  // 720h
	forever := upload("keep", true, 2*time.Hour) // 0: for ever
	fresh, err := ups.Create(ctx, "plain", 5, strings.Repeat("a", 64), t0, t0.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := obj.Put(ctx, fresh.Key, strings.NewReader("bytes"), 5); err != nil {
		t.Fatal(err)
	}
	bucket := func() []string {
		t.Helper()
		objs, err := obj.List(ctx, "")
		if err != nil {
			t.Fatal(err)
		}
		var keys []string
		for _, o := range objs {
			keys = append(keys, o.Key)
		}
		slices.Sort(keys)
		return keys
	}
	records := func() []string {
		t.Helper()
		var ids []string
		for _, u := range []uploads.Upload{unused, neverSent, short, plain, forever, fresh} {
			if _, err := ups.Get(ctx, u.Tenant, u.ID); err == nil {
				ids = append(ids, u.ID)
			} else if !errors.Is(err, uploads.ErrNotFound) {
				t.Fatal(err)
			}
		}
		return ids
	}
	keys := func(us ...uploads.Upload) []string {
		var out []string
		for _, u := range us {
			out = append(out, u.Key)
		}
		slices.Sort(out)
		return out
	}
	ids := func(us ...uploads.Upload) []string {
		var out []string
		for _, u := range us {
			out = append(out, u.ID)
		}
		return out
	}

	p := &Purger{Jobs: jobs, Objects: obj, Uploads: ups, UploadGrace: 2 * time.Hour,
		Retention: Retention{Default: 720 * time.Hour, Tenants: map[string]time.Duration{"short": time.Hour, "keep": 0}},
		Now:       func() time.Time { return t0 }, Log: testlog.New(t)}
	res, err := p.Purge(ctx)
	if err != nil || res.Uploads != 3 || res.Objects != 2 {
		t.Fatalf("purge: %+v %v; want 3 uploads (unused, never sent, short) and 2 objects", res, err)
	}
	if got, want := bucket(), keys(plain, forever, fresh); !slices.Equal(got, want) {
		t.Fatalf("bucket after the purge: %v, want %v", got, want)
	}
	if got, want := records(), ids(plain, forever, fresh); !slices.Equal(got, want) {
		t.Fatalf("records after the purge: %v, want %v", got, want)
	}

	// A claimed upload cannot be referenced; the claim's purge, cut short
	// before the object went, is finished by the next pass.
	if n, err := ups.Claim(ctx, uploads.PurgeFilter{Unused: true, Before: t0.Add(2 * time.Hour)}, t0, 10); err != nil || n != 1 {
		t.Fatalf("claim the fresh upload: %d %v", n, err)
	}
	if _, err := ups.Use(ctx, "plain", fresh.ID, t0); !errors.Is(err, uploads.ErrNotFound) {
		t.Fatalf("a claimed upload referenced: %v", err)
	}
	if res, err := p.Purge(ctx); err != nil || res.Uploads != 1 || res.Objects != 1 {
		t.Fatalf("purge after a claim: %+v %v", res, err)
	}

	// A reference keeps an upload for its tenant's retention from then on.
	p.Now = func() time.Time { return t0.Add(720*time.Hour - time.Minute) }
	if _, err := ups.Use(ctx, "plain", plain.ID, t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if res, err := p.Purge(ctx); err != nil || res.Uploads != 0 {
		t.Fatalf("purge within the retention after the last reference: %+v %v", res, err)
	}
	p.Now = func() time.Time { return t0.Add(31 * 24 * time.Hour) }
	if res, err := p.Purge(ctx); err != nil || res.Uploads != 1 || res.Objects != 1 {
		t.Fatalf("purge at +31d: %+v %v", res, err)
	}
	if got, want := bucket(), keys(forever); !slices.Equal(got, want) {
		t.Fatalf("bucket at +31d: %v, want only the kept tenant's upload %v", got, want)
	}
	if got, want := records(), ids(forever); !slices.Equal(got, want) {
		t.Fatalf("records at +31d: %v, want %v", got, want)
	}
}

// An upload that a job that may still run references (queued, running, or
// failed and not purged: a retry runs it again) outlives its tenant's
// retention: the purge keeps it (object and record, and it can still be
// referenced) until no such job references it, then purges it once the
// retention has passed again.
func TestPurgeKeepsUploadsOfJobsThatMayRun(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	jobs, obj, ups := uploadStores(t)
	life := lifecycle.New(jobs, events.New(testenv.Redis(t), events.Config{}), testlog.New(t), lifecycle.Backoff{})
	pool := testenv.UniqueName(t, 40)
	t0 := time.Now()
	sum := strings.Repeat("a", 64)
	upload := func() uploads.Upload {
		t.Helper()
		u, err := ups.Create(ctx, "short", 5, sum, t0.Add(-4*time.Hour), t0.Add(-3*time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := obj.Put(ctx, u.Key, strings.NewReader("bytes"), 5); err != nil {
			t.Fatal(err)
		}
		if u, err = ups.Use(ctx, "short", u.ID, t0.Add(-2*time.Hour)); err != nil {
			t.Fatal(err)
		}
		return u
	}
	submit := func(u uploads.Upload) *job.Job {
		t.Helper()
		in, err := json.Marshal(map[string]any{"image": inputfiles.Canonical(u.ID, 5, sum), "n": 1})
		if err != nil {
			t.Fatal(err)
		}
		j, _, err := jobs.Create(ctx, job.Job{Tenant: "short", Algorithm: "a", Version: "1.0.0", Pool: pool, Input: in})
		if err != nil {
			t.Fatal(err)
		}
		return j
	}
	waiting, running, done, failed := upload(), upload(), upload(), upload()
	jw := submit(waiting)
	jr, err := life.Start(ctx, submit(running), "w1")
	if err != nil {
		t.Fatal(err)
	}
	jd, err := life.Start(ctx, submit(done), "w1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := life.Succeed(ctx, jd.Job, lifecycle.Result{Output: []byte(`{}`)}); err != nil {
		t.Fatal(err)
	}
	jf, err := life.Start(ctx, submit(failed), "w1")
	if err != nil {
		t.Fatal(err)
	}
	if out, err := life.Fail(ctx, jf.Job, lifecycle.Failure{Error: &job.Error{Code: "exit", Message: "exit 1"}}); err != nil || out.Job.State != job.Failed {
		t.Fatalf("fail: %+v %v", out.Job, err)
	}
	// Another tenant's queued job naming the same id in its input keeps nothing.
	other, _ := json.Marshal(map[string]any{"image": inputfiles.Canonical(done.ID, 5, sum)})
	if _, _, err := jobs.Create(ctx, job.Job{Tenant: "other", Algorithm: "a", Version: "1.0.0", Pool: pool, Input: other}); err != nil {
		t.Fatal(err)
	}

	present := func(u uploads.Upload) bool {
		t.Helper()
		_, err := ups.Get(ctx, "short", u.ID)
		if err != nil && !errors.Is(err, uploads.ErrNotFound) {
			t.Fatal(err)
		}
		objs, lerr := obj.List(ctx, u.Key)
		if lerr != nil {
			t.Fatal(lerr)
		}
		if (err == nil) != (len(objs) == 1) {
			t.Fatalf("upload %s: record %v, objects %d", u.ID, err == nil, len(objs))
		}
		return err == nil
	}

	p := &Purger{Jobs: jobs, Objects: obj, Uploads: ups, UploadGrace: 2 * time.Hour,
		Retention: Retention{Tenants: map[string]time.Duration{"short": time.Hour}},
		Now:       func() time.Time { return t0 }, Log: testlog.New(t)}
	res, err := p.Purge(ctx)
	if err != nil || res.Uploads != 1 || res.Objects != 1 || res.UploadsKept != 3 {
		t.Fatalf("purge: %+v %v; want the succeeded job's upload purged, the queued, running and failed job's kept", res, err)
	}
	if present(done) || !present(waiting) || !present(running) || !present(failed) {
		t.Fatalf("after the purge: done %v, waiting %v, running %v, failed %v; want the uploads of the jobs that may run",
			present(done), present(waiting), present(running), present(failed))
	}
	// A kept upload is not left claimed: a new submit may reference it.
	if _, err := ups.Use(ctx, "short", waiting.ID, t0.Add(-2*time.Hour)); err != nil {
		t.Fatalf("reference a kept upload: %v", err)
	}
	// 90 minutes on the failed job's retention has run out: it is purged
	// (a retry is 410), and its upload with it; the unfinished jobs' are
	// kept again.
	p.Now = func() time.Time { return t0.Add(90 * time.Minute) }
	if res, err := p.Purge(ctx); err != nil || res.Purged != 2 || res.Uploads != 1 || res.UploadsKept != 2 {
		t.Fatalf("purge at +90m: %+v %v; want the finished jobs purged, the failed one's upload too, the unfinished jobs' kept", res, err)
	}
	if present(failed) || !present(waiting) || !present(running) {
		t.Fatal("at +90m: want only the unfinished jobs' uploads left")
	}

	// Both jobs finish: their uploads go once the retention has passed.
	if _, err := life.Succeed(ctx, jr.Job, lifecycle.Result{Output: []byte(`{}`)}); err != nil {
		t.Fatal(err)
	}
	if _, err := jobs.Transition(ctx, jw.ID, jobstore.Change{From: job.Queued, To: job.Canceled}); err != nil {
		t.Fatal(err)
	}
	p.Now = func() time.Time { return t0.Add(4 * time.Hour) }
	if res, err := p.Purge(ctx); err != nil || res.Uploads != 2 || res.UploadsKept != 0 {
		t.Fatalf("purge at +4h with the jobs finished: %+v %v", res, err)
	}
	if present(waiting) || present(running) {
		t.Fatal("the finished jobs' uploads are still there")
	}
}
