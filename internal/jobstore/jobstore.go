// Package jobstore keeps job records in MongoDB, the source of truth of aigw.
//
// Every state change is a compare-and-set on {_id, state: from}; a lost race comes
// back as a *ConflictError. It uses only what both MongoDB and FerretDB support: no
// multi-document transactions, change streams, TTL or partial indexes.
package jobstore

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/aigw/aigw/internal/job"
	"github.com/aigw/aigw/internal/mongoconn"
	"github.com/aigw/aigw/internal/mongoindex"
)

var (
	// ErrNotFound: no such job (for this tenant).
	ErrNotFound = errors.New("job not found")
	// ErrConflict is matched by every *ConflictError.
	ErrConflict = errors.New("job state conflict")
	// ErrInvalid is matched by errors about an invalid job or query.
	ErrInvalid = errors.New("invalid job")
)

// ConflictError is a compare-and-set that lost: the job was no longer in the
// expected state (or attempt).
type ConflictError struct {
	ID                             string
	Expected                       job.State
	Actual                         job.State
	ExpectedAttempt, ActualAttempt int
}

func (e *ConflictError) Error() string {
	if e.ExpectedAttempt > 0 && e.ExpectedAttempt != e.ActualAttempt {
		return fmt.Sprintf("job %s is at attempt %d, not %d", e.ID, e.ActualAttempt, e.ExpectedAttempt)
	}
	if e.Actual == "" {
		return fmt.Sprintf("job %s is not %s (or not claimable in one update)", e.ID, e.Expected)
	}
	return fmt.Sprintf("job %s is %s, not %s", e.ID, e.Actual, e.Expected)
}

// Is makes errors.Is(err, ErrConflict) true.
func (e *ConflictError) Is(target error) bool { return target == ErrConflict }

// Options tunes a Store.
type Options struct {
	// Collection name (default "jobs").
	Collection string
	// IdempotencyTTL is how long an idempotency key keeps returning its job
	// (default 24h); after that the same key creates a new job.
	IdempotencyTTL time.Duration
	// Now is the clock (default time.Now); tests set it.
	Now func() time.Time
}

// Store is safe for concurrent use.
type Store struct {
	jobs    *mongo.Collection
	idemTTL time.Duration
	now     func() time.Time
}

// record is the stored document: the job plus the uniqueness key that makes an
// idempotency key return one job per tenant. For a job without a key, dedup is its
// own id, so the unique index never collides (partial indexes, which MongoDB would
// use here, are not available in FerretDB).
type record struct {
	job.Job `bson:",inline"`
	Dedup   string `bson:"dedup"`
	// Dispatch is the job's dispatch hint (job.DispatchHint), fixed at
	// creation: Claim starts only a job whose record carries the hint it is
	// given, so a gang or a job whose webhook wants the running event (their
	// hint is "") is never claimed, whatever a queue entry says.
	Dispatch string `bson:"dispatch,omitempty"`
}

// New returns a Store on db and creates its indexes (idempotent).
func New(ctx context.Context, db *mongo.Database, o Options) (*Store, error) {
	if o.Collection == "" {
		o.Collection = "jobs"
	}
	if o.IdempotencyTTL == 0 {
		o.IdempotencyTTL = 24 * time.Hour
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	s := &Store{jobs: db.Collection(o.Collection), idemTTL: o.IdempotencyTTL, now: o.Now}
	err := mongoindex.Ensure(ctx, s.jobs, []mongo.IndexModel{
		{Keys: bson.D{{Key: "dedup", Value: 1}}, Options: options.Index().SetName("dedup_unique").SetUnique(true)},
		{Keys: bson.D{{Key: "tenant", Value: 1}, {Key: "_id", Value: -1}}, Options: options.Index().SetName("tenant_id")},
		{Keys: bson.D{{Key: "tenant", Value: 1}, {Key: "state", Value: 1}, {Key: "_id", Value: -1}}, Options: options.Index().SetName("tenant_state_id")},
		{Keys: bson.D{{Key: "tenant", Value: 1}, {Key: "algorithm", Value: 1}, {Key: "_id", Value: -1}}, Options: options.Index().SetName("tenant_algorithm_id")},
		{Keys: bson.D{{Key: "state", Value: 1}, {Key: "_id", Value: 1}}, Options: options.Index().SetName("state_id")},
		// The orchestrator's scans, a pool at a time (scan.go).
		{Keys: bson.D{{Key: "pool", Value: 1}, {Key: "state", Value: 1}, {Key: "_id", Value: 1}}, Options: options.Index().SetName("pool_state_id")},
		{Keys: bson.D{{Key: "pool", Value: 1}, {Key: "state", Value: 1}, {Key: "expires_at", Value: 1}}, Options: options.Index().SetName("pool_state_expires_at")},
		// Usage (usage.go): the jobs that finished in a range, a tenant's or all.
		{Keys: bson.D{{Key: "tenant", Value: 1}, {Key: "finished_at", Value: 1}}, Options: options.Index().SetName("tenant_finished_at")},
		{Keys: bson.D{{Key: "finished_at", Value: 1}}, Options: options.Index().SetName("finished_at")},
		// The webhook outbox (PendingNotifications): only jobs with a
		// notification in it have a date under outbox.at.
		{Keys: bson.D{{Key: "outbox.at", Value: 1}}, Options: options.Index().SetName("outbox_at")},
	}...)
	if err != nil {
		return nil, fmt.Errorf("create job indexes: %w", mongoconn.WrapUnavailable(err))
	}
	return s, nil
}

// Create records a new queued job. With an idempotency key, a second create by the
// same tenant with the same key (within IdempotencyTTL) returns the first job and
// created=false, also when both race.
func (s *Store) Create(ctx context.Context, j job.Job) (out *job.Job, created bool, err error) {
	if j.Tenant == "" || j.Algorithm == "" || j.Pool == "" {
		return nil, false, fmt.Errorf("%w: tenant, algorithm and pool are required", ErrInvalid)
	}
	if j.Priority, err = job.ParsePriority(string(j.Priority)); err != nil {
		return nil, false, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if j.MaxRetries < 0 {
		return nil, false, fmt.Errorf("%w: max_retries must not be negative", ErrInvalid)
	}
	now := s.now().UTC().Truncate(time.Millisecond)
	if j.ID == "" {
		j.ID = job.NewIDAt(now)
	}
	j.State = job.Queued
	j.Attempt = 1
	j.CreatedAt, j.UpdatedAt, j.QueuedAt = now, now, &now
	j.Outbox = nil
	if j.Notifies(job.Queued) {
		j.Outbox = []job.Notification{{State: job.Queued, Attempt: 1, At: now}}
	}
	rec := record{Job: j, Dedup: "id:" + j.ID, Dispatch: j.DispatchHint()}
	if j.IdempotencyKey != "" {
		rec.Dedup = "key:" + j.Tenant + "\x00" + j.IdempotencyKey
	}
	for range 5 {
		_, err := s.jobs.InsertOne(ctx, rec)
		if err == nil {
			return &rec.Job, true, nil
		}
		if !mongo.IsDuplicateKeyError(err) || j.IdempotencyKey == "" {
			return nil, false, fmt.Errorf("create job: %w", mongoconn.WrapUnavailable(err))
		}
		var existing record
		err = s.jobs.FindOne(ctx, bson.D{{Key: "dedup", Value: rec.Dedup}}).Decode(&existing)
		if errors.Is(err, mongo.ErrNoDocuments) {
			continue // the holder of the key just released it: try again
		}
		if err != nil {
			return nil, false, fmt.Errorf("create job: %w", mongoconn.WrapUnavailable(err))
		}
		if now.Sub(existing.CreatedAt) < s.idemTTL {
			return &existing.Job, false, nil
		}
		// The key outlived its TTL: release it from the old job, then insert again.
		_, err = s.jobs.UpdateOne(ctx, bson.D{{Key: "_id", Value: existing.ID}, {Key: "dedup", Value: rec.Dedup}},
			bson.D{{Key: "$set", Value: bson.D{{Key: "dedup", Value: "id:" + existing.ID}}}})
		if err != nil {
			return nil, false, fmt.Errorf("create job: %w", mongoconn.WrapUnavailable(err))
		}
	}
	return nil, false, fmt.Errorf("create job: idempotency key %q kept changing hands", j.IdempotencyKey)
}

// Get returns a tenant's job; another tenant's job is ErrNotFound.
func (s *Store) Get(ctx context.Context, tenant, id string) (*job.Job, error) {
	// Read by _id alone and compare the tenant here: the same one-document read
	// on MongoDB, and the only filter FerretDB answers from its primary key.
	j, err := s.get(ctx, bson.D{{Key: "_id", Value: id}}, id)
	if err != nil {
		return nil, err
	}
	if j.Tenant != tenant {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	return j, nil
}

// GetByID returns a job whatever its tenant (for workers and the orchestrator).
func (s *Store) GetByID(ctx context.Context, id string) (*job.Job, error) {
	return s.get(ctx, bson.D{{Key: "_id", Value: id}}, id)
}

func (s *Store) get(ctx context.Context, filter bson.D, id string) (*job.Job, error) {
	var rec record
	err := s.jobs.FindOne(ctx, filter).Decode(&rec)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	if err != nil {
		return nil, fmt.Errorf("get job %s: %w", id, mongoconn.WrapUnavailable(err))
	}
	return &rec.Job, nil
}

// Filter selects jobs for List.
type Filter struct {
	// Tenant selects one tenant's jobs; required unless AllTenants.
	Tenant string
	// AllTenants lists every tenant's jobs (an operator's view); Tenant must be "".
	AllTenants bool
	Algorithm  string
	State      job.State
	Since      time.Time // created at or after
	// Limit is the page size (default 50, at most 500).
	Limit int
	// Cursor continues a previous page (Page.Next).
	Cursor string
}

// Page is one page of jobs, newest first.
type Page struct {
	Jobs []job.Job
	// Next is the cursor of the following page, "" on the last page. Cursors are
	// stable: jobs created after the first page never shift later pages.
	Next string
}

// List returns a tenant's jobs (or every tenant's), newest first, a page at a time.
func (s *Store) List(ctx context.Context, f Filter) (Page, error) {
	if (f.Tenant == "") != f.AllTenants {
		return Page{}, fmt.Errorf("%w: list needs a tenant, or AllTenants without one", ErrInvalid)
	}
	if f.Limit == 0 {
		f.Limit = 50
	}
	if f.Limit < 0 || f.Limit > 500 {
		return Page{}, fmt.Errorf("%w: limit must be 1-500, got %d", ErrInvalid, f.Limit)
	}
	if f.State != "" && !f.State.Valid() {
		return Page{}, fmt.Errorf("%w: unknown state %q", ErrInvalid, f.State)
	}
	q := bson.D{}
	if f.Tenant != "" {
		q = append(q, bson.E{Key: "tenant", Value: f.Tenant})
	}
	if f.Algorithm != "" {
		q = append(q, bson.E{Key: "algorithm", Value: f.Algorithm})
	}
	if f.State != "" {
		q = append(q, bson.E{Key: "state", Value: f.State})
	}
	if !f.Since.IsZero() {
		q = append(q, bson.E{Key: "created_at", Value: bson.D{{Key: "$gte", Value: f.Since}}})
	}
	if f.Cursor != "" {
		after, err := base64.RawURLEncoding.DecodeString(f.Cursor)
		if err != nil || !job.ValidID(string(after)) {
			return Page{}, fmt.Errorf("%w: malformed cursor %q (pass the next cursor of the previous page unchanged)", ErrInvalid, f.Cursor)
		}
		q = append(q, bson.E{Key: "_id", Value: bson.D{{Key: "$lt", Value: string(after)}}})
	}
	cur, err := s.jobs.Find(ctx, q, options.Find().SetSort(bson.D{{Key: "_id", Value: -1}}).SetLimit(int64(f.Limit+1)))
	if err != nil {
		return Page{}, fmt.Errorf("list jobs: %w", mongoconn.WrapUnavailable(err))
	}
	var recs []record
	if err := cur.All(ctx, &recs); err != nil {
		return Page{}, fmt.Errorf("list jobs: %w", mongoconn.WrapUnavailable(err))
	}
	var p Page
	for i, r := range recs {
		if i == f.Limit {
			p.Next = base64.RawURLEncoding.EncodeToString([]byte(recs[i-1].ID))
			break
		}
		p.Jobs = append(p.Jobs, r.Job)
	}
	return p, nil
}

// Count is the number of jobs in one state of one algorithm.
type Count struct {
	State     job.State `bson:"state"`
	Algorithm string    `bson:"algorithm"`
	N         int64     `bson:"n"`
}

// Counts returns job counts per state and algorithm; tenant "" counts every tenant.
func (s *Store) Counts(ctx context.Context, tenant string) ([]Count, error) {
	var pipeline mongo.Pipeline
	if tenant != "" {
		pipeline = append(pipeline, bson.D{{Key: "$match", Value: bson.D{{Key: "tenant", Value: tenant}}}})
	}
	pipeline = append(pipeline,
		bson.D{{Key: "$group", Value: bson.D{
			{Key: "_id", Value: bson.D{{Key: "state", Value: "$state"}, {Key: "algorithm", Value: "$algorithm"}}},
			{Key: "n", Value: bson.D{{Key: "$sum", Value: 1}}},
		}}},
	)
	cur, err := s.jobs.Aggregate(ctx, pipeline)
	if err != nil {
		return nil, fmt.Errorf("count jobs: %w", mongoconn.WrapUnavailable(err))
	}
	var rows []struct {
		ID struct {
			State     job.State `bson:"state"`
			Algorithm string    `bson:"algorithm"`
		} `bson:"_id"`
		N int64 `bson:"n"`
	}
	if err := cur.All(ctx, &rows); err != nil {
		return nil, fmt.Errorf("count jobs: %w", mongoconn.WrapUnavailable(err))
	}
	out := make([]Count, len(rows))
	for i, r := range rows {
		out[i] = Count{State: r.ID.State, Algorithm: r.ID.Algorithm, N: r.N}
	}
	return out, nil
}
