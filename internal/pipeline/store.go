package pipeline

import (
	"context"
	"encoding/json"
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

// RunState is the state of a pipeline run.
type RunState string

const (
	// RunQueued: created, no step submitted yet.
	RunQueued RunState = "queued"
	// RunRunning: at least one step was submitted.
	RunRunning RunState = "running"
	// RunSucceeded: every step succeeded. Final.
	RunSucceeded RunState = "succeeded"
	// RunFailed: a step failed; the others were canceled. Final.
	RunFailed RunState = "failed"
	// RunCanceled: canceled by the client. Final.
	RunCanceled RunState = "canceled"
)

// Terminal reports whether s is final.
func (s RunState) Terminal() bool {
	return s == RunSucceeded || s == RunFailed || s == RunCanceled
}

// StepState is the state of one step of a run.
type StepState string

const (
	// StepPending: waiting for the steps it needs.
	StepPending StepState = "pending"
	// StepRunning: its jobs are submitted (JobIDs).
	StepRunning   StepState = "running"
	StepSucceeded StepState = "succeeded"
	StepFailed    StepState = "failed"
	// StepCanceled: it was running when the run failed or was canceled.
	StepCanceled StepState = "canceled"
	// StepSkipped: it never started because the run ended first.
	StepSkipped StepState = "skipped"
)

// StepRun is the progress of one step in a run.
type StepRun struct {
	State  StepState `json:"state" bson:"state"`
	JobIDs []string  `json:"job_ids" bson:"job_ids"`
	// Output is the job's output, or for a for_each step the array of its
	// jobs' outputs in element order.
	Output json.RawMessage `json:"output,omitempty" bson:"output,omitempty"`
	Error  *job.Error      `json:"error,omitempty" bson:"error,omitempty"`
}

// Run is one execution of a pipeline (collection pipeline_runs).
type Run struct {
	ID              string              `json:"id" bson:"_id"`
	Tenant          string              `json:"-" bson:"tenant"`
	Pipeline        string              `json:"pipeline" bson:"pipeline"`
	PipelineVersion int                 `json:"pipeline_version" bson:"pipeline_version"`
	State           RunState            `json:"state" bson:"state"`
	Input           json.RawMessage     `json:"input,omitempty" bson:"input,omitempty"`
	Steps           map[string]*StepRun `json:"steps" bson:"steps"`
	Error           *job.Error          `json:"error,omitempty" bson:"error,omitempty"`
	CreatedAt       time.Time           `json:"created_at" bson:"created_at"`
	UpdatedAt       time.Time           `json:"updated_at" bson:"updated_at"`
	FinishedAt      *time.Time          `json:"finished_at,omitempty" bson:"finished_at,omitempty"`
	// Definition is the pipeline as it was when the run started: a later
	// registration does not change a run.
	Definition Definition `json:"-" bson:"definition"`
	// Rev counts saves; every save is a compare-and-set on it.
	Rev int `json:"-" bson:"rev"`
}

// Errors of the Store.
var (
	ErrNotFound = errors.New("not found")
	ErrConflict = errors.New("pipeline run changed concurrently")
)

// Store keeps pipelines (collection pipelines) and runs (pipeline_runs).
type Store struct {
	pipelines *mongo.Collection
	runs      *mongo.Collection
	now       func() time.Time
}

// NewStore returns a Store on db.
func NewStore(db *mongo.Database) *Store {
	return &Store{pipelines: db.Collection("pipelines"), runs: db.Collection("pipeline_runs"), now: time.Now}
}

// EnsureIndexes creates the indexes that do not exist yet. (Only missing ones:
// FerretDB drops the connection on a createIndexes of an index that exists.)
func (s *Store) EnsureIndexes(ctx context.Context) error {
	if err := mongoindex.Ensure(ctx, s.pipelines, mongo.IndexModel{Keys: bson.D{{Key: "tenant", Value: 1}, {Key: "name", Value: 1}},
		Options: options.Index().SetName("tenant_name")}); err != nil {
		return mongoconn.WrapUnavailable(err)
	}
	return mongoconn.WrapUnavailable(mongoindex.Ensure(ctx, s.runs, mongo.IndexModel{Keys: bson.D{{Key: "state", Value: 1}, {Key: "_id", Value: 1}},
		Options: options.Index().SetName("state_id")}))
}

// Put registers (or replaces) a tenant's pipeline; created is true the first time.
func (s *Store) Put(ctx context.Context, tenant, name string, d Definition) (p *Pipeline, created bool, err error) {
	now := s.now().UTC().Truncate(time.Millisecond)
	id := tenant + "/" + name
	res, err := s.pipelines.UpdateOne(ctx, bson.D{{Key: "_id", Value: id}},
		bson.D{
			{Key: "$set", Value: bson.D{{Key: "tenant", Value: tenant}, {Key: "name", Value: name},
				{Key: "description", Value: d.Description}, {Key: "steps", Value: d.Steps}, {Key: "updated_at", Value: now}}},
			{Key: "$inc", Value: bson.D{{Key: "version", Value: 1}}},
			{Key: "$setOnInsert", Value: bson.D{{Key: "created_at", Value: now}}},
		}, options.UpdateOne().SetUpsert(true))
	if err != nil {
		return nil, false, fmt.Errorf("register pipeline %s: %w", name, mongoconn.WrapUnavailable(err))
	}
	p, err = s.Get(ctx, tenant, name)
	if err != nil {
		return nil, false, err
	}
	return p, res.UpsertedCount == 1, nil
}

// Get returns a tenant's pipeline; another tenant's is ErrNotFound.
func (s *Store) Get(ctx context.Context, tenant, name string) (*Pipeline, error) {
	var p Pipeline
	err := s.pipelines.FindOne(ctx, bson.D{{Key: "_id", Value: tenant + "/" + name}}).Decode(&p)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return nil, fmt.Errorf("%w: pipeline %s", ErrNotFound, name)
	}
	if err != nil {
		return nil, fmt.Errorf("get pipeline %s: %w", name, mongoconn.WrapUnavailable(err))
	}
	return &p, nil
}

// List returns a tenant's pipelines by name.
func (s *Store) List(ctx context.Context, tenant string) ([]Pipeline, error) {
	cur, err := s.pipelines.Find(ctx, bson.D{{Key: "tenant", Value: tenant}}, options.Find().SetSort(bson.D{{Key: "name", Value: 1}}))
	if err != nil {
		return nil, fmt.Errorf("list pipelines: %w", mongoconn.WrapUnavailable(err))
	}
	out := []Pipeline{}
	if err := cur.All(ctx, &out); err != nil {
		return nil, fmt.Errorf("list pipelines: %w", mongoconn.WrapUnavailable(err))
	}
	return out, nil
}

// createRun stores a new run.
func (s *Store) createRun(ctx context.Context, r *Run) error {
	if _, err := s.runs.InsertOne(ctx, r); err != nil {
		return fmt.Errorf("create pipeline run: %w", mongoconn.WrapUnavailable(err))
	}
	return nil
}

// GetRun returns a tenant's run of pipeline name; a run of another tenant or
// pipeline is ErrNotFound.
func (s *Store) GetRun(ctx context.Context, tenant, name, id string) (*Run, error) {
	r, err := s.getRun(ctx, id)
	if err != nil {
		return nil, err
	}
	if r.Tenant != tenant || r.Pipeline != name {
		return nil, fmt.Errorf("%w: run %s", ErrNotFound, id)
	}
	return r, nil
}

func (s *Store) getRun(ctx context.Context, id string) (*Run, error) {
	var r Run
	err := s.runs.FindOne(ctx, bson.D{{Key: "_id", Value: id}}).Decode(&r)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return nil, fmt.Errorf("%w: run %s", ErrNotFound, id)
	}
	if err != nil {
		return nil, fmt.Errorf("get pipeline run %s: %w", id, mongoconn.WrapUnavailable(err))
	}
	return &r, nil
}

// saveRun writes r if it is still at r.Rev (then r.Rev counts up); otherwise
// ErrConflict and nothing is written.
func (s *Store) saveRun(ctx context.Context, r *Run) error {
	r.UpdatedAt = s.now().UTC().Truncate(time.Millisecond)
	next := *r
	next.Rev++
	res, err := s.runs.ReplaceOne(ctx, bson.D{{Key: "_id", Value: r.ID}, {Key: "rev", Value: r.Rev}}, &next)
	if err != nil {
		return fmt.Errorf("save pipeline run %s: %w", r.ID, mongoconn.WrapUnavailable(err))
	}
	if res.MatchedCount != 1 {
		return fmt.Errorf("%w: %s", ErrConflict, r.ID)
	}
	r.Rev = next.Rev
	return nil
}

// activeRuns returns up to limit runs that are not finished, in id order
// after after ("" from the oldest); the state_id index serves it.
func (s *Store) activeRuns(ctx context.Context, after string, limit int) ([]Run, error) {
	q := bson.D{{Key: "state", Value: bson.D{{Key: "$in", Value: bson.A{RunQueued, RunRunning}}}}}
	if after != "" {
		q = append(q, bson.E{Key: "_id", Value: bson.D{{Key: "$gt", Value: after}}})
	}
	cur, err := s.runs.Find(ctx, q, options.Find().SetSort(bson.D{{Key: "_id", Value: 1}}).SetLimit(int64(limit)))
	if err != nil {
		return nil, fmt.Errorf("list active pipeline runs: %w", err)
	}
	var out []Run
	if err := cur.All(ctx, &out); err != nil {
		return nil, fmt.Errorf("list active pipeline runs: %w", err)
	}
	return out, nil
}
