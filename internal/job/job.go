package job

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/oklog/ulid/v2"
)

// Priority orders the jobs of one pool: a worker takes high before normal before low.
type Priority string

const (
	High   Priority = "high"
	Normal Priority = "normal"
	Low    Priority = "low"
)

// Priorities returns every priority, highest first.
func Priorities() []Priority { return []Priority{High, Normal, Low} }

// ParsePriority parses a priority name; the empty string means Normal.
func ParsePriority(v string) (Priority, error) {
	switch p := Priority(v); p {
	case "":
		return Normal, nil
	case High, Normal, Low:
		return p, nil
	}
	return "", fmt.Errorf("unknown priority %q (want high, normal or low)", v)
}

// Error is why an attempt or a job failed: a stable machine-readable code
// (e.g. "timeout", "runtime_error", "lost") and a message for people.
type Error struct {
	Code    string `json:"code" bson:"code"`
	Message string `json:"message" bson:"message"`
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// Webhook is where state changes of a job are POSTed, filtered by Events
// (state names; empty means every terminal state).
type Webhook struct {
	URL    string   `json:"url" bson:"url"`
	Events []string `json:"events,omitempty" bson:"events,omitempty"`
}

// Job is the record of one algorithm run, as stored in MongoDB and served by the API.
// Input and Output hold JSON documents as given; the store keeps them byte for byte.
type Job struct {
	ID        string   `json:"id" bson:"_id"`
	Tenant    string   `json:"tenant" bson:"tenant"`
	Algorithm string   `json:"algorithm" bson:"algorithm"`
	Version   string   `json:"version,omitempty" bson:"version,omitempty"`
	Pool      string   `json:"pool" bson:"pool"`
	Priority  Priority `json:"priority" bson:"priority"`
	State     State    `json:"state" bson:"state"`

	Input  json.RawMessage `json:"input,omitempty" bson:"input,omitempty"`
	Output json.RawMessage `json:"output,omitempty" bson:"output,omitempty"`
	Error  *Error          `json:"error,omitempty" bson:"error,omitempty"`

	// Attempt is the number of the current (or next) attempt, starting at 1.
	Attempt int `json:"attempt" bson:"attempt"`
	// MaxRetries is how many automatic retries follow a failed first attempt.
	MaxRetries int `json:"max_retries" bson:"max_retries"`
	// ExecutionTimeoutMS bounds one attempt's run time; 0 means the algorithm's default.
	ExecutionTimeoutMS int64 `json:"execution_timeout_ms,omitempty" bson:"execution_timeout_ms,omitempty"`
	// GangSize > 1 runs the job as that many members at once.
	GangSize int `json:"gang_size,omitempty" bson:"gang_size,omitempty"`

	CreatedAt  time.Time  `json:"created_at" bson:"created_at"`
	UpdatedAt  time.Time  `json:"updated_at" bson:"updated_at"`
	QueuedAt   *time.Time `json:"queued_at,omitempty" bson:"queued_at,omitempty"`
	StartedAt  *time.Time `json:"started_at,omitempty" bson:"started_at,omitempty"`
	FinishedAt *time.Time `json:"finished_at,omitempty" bson:"finished_at,omitempty"`
	// NotBefore delays a (re)queued job: no worker starts it earlier.
	NotBefore *time.Time `json:"not_before,omitempty" bson:"not_before,omitempty"`
	// ExpiresAt is when a still-queued job becomes expired.
	ExpiresAt *time.Time `json:"expires_at,omitempty" bson:"expires_at,omitempty"`
	// PurgedAt is when its retention ran out and its input, output, log and
	// artifacts were deleted (the record stays, so the API answers 410).
	PurgedAt *time.Time `json:"purged_at,omitempty" bson:"purged_at,omitempty"`

	// Worker names the worker running (or that last ran) the job.
	Worker         string   `json:"worker,omitempty" bson:"worker,omitempty"`
	IdempotencyKey string   `json:"idempotency_key,omitempty" bson:"idempotency_key,omitempty"`
	Webhook        *Webhook `json:"webhook,omitempty" bson:"webhook,omitempty"`
	// IdempotencyFingerprint digests the submit that took IdempotencyKey
	// (algorithm, asked-for version, canonical body), so a reuse of the key
	// for another request is told apart from a repeat; not shown by the API.
	IdempotencyFingerprint string `json:"-" bson:"idempotency_fingerprint,omitempty"`

	// Artifacts are the files the last attempt wrote to $AIGW_OUTPUT_DIR.
	Artifacts []Artifact `json:"artifacts,omitempty" bson:"artifacts,omitempty"`
	// Log is the tail of the last attempt's log (stderr of an exec run).
	Log string `json:"log,omitempty" bson:"log,omitempty"`
	// ColdStartMS is how long the last attempt waited for a warm process
	// (runtime serve) to start and finish its set-up; absent when it found
	// one ready.
	ColdStartMS int64 `json:"cold_start_ms,omitempty" bson:"cold_start_ms,omitempty"`
	// Usage is what the job's attempts held, summed over them: GPU-seconds
	// and CPU-seconds (see Usage). Absent until an attempt ends.
	Usage *Usage `json:"usage,omitempty" bson:"usage,omitempty"`
	// Outbox holds state changes whose webhook is still to be handed to the
	// orchestrator's delivery outbox. The store appends to it in the same
	// atomic update as the transition, so no notification is lost to a crash.
	Outbox []Notification `json:"-" bson:"outbox,omitempty"`
}

// Artifact is one stored output file of a job: an object in the S3 store
// (Key) or, in a small deployment without one, a MongoDB GridFS file
// (FileID).
type Artifact struct {
	Name   string `json:"name" bson:"name"`
	Key    string `json:"-" bson:"key,omitempty"`
	FileID string `json:"file_id,omitempty" bson:"file_id,omitempty"`
	Size   int64  `json:"size" bson:"size"`
	SHA256 string `json:"sha256,omitempty" bson:"sha256,omitempty"`
	// URL downloads it until URLExpiresAt: a presigned URL of the store,
	// made for each answer of the API, never stored.
	URL          string     `json:"url,omitempty" bson:"-"`
	URLExpiresAt *time.Time `json:"url_expires_at,omitempty" bson:"-"`
}

// Usage is metered compute: GPUSeconds is GPUs held × wall time, CPUSeconds
// is worker slots held × wall time (a run holds one slot; a gang one per
// member), from the attempt's start to its end as recorded.
type Usage struct {
	GPUSeconds float64 `json:"gpu_seconds" bson:"gpu_seconds"`
	CPUSeconds float64 `json:"cpu_seconds" bson:"cpu_seconds"`
}

// Zero reports whether u meters nothing.
func (u Usage) Zero() bool { return u.GPUSeconds == 0 && u.CPUSeconds == 0 }

// Notification is a state change that the job's webhook wants to hear about.
type Notification struct {
	State   State     `bson:"state"`
	Attempt int       `bson:"attempt"`
	At      time.Time `bson:"at"`
}

// Notifies reports whether the job's webhook wants to hear about state s: every
// terminal state when the webhook names no events, else the states it names.
func (j *Job) Notifies(s State) bool {
	if j.Webhook == nil || j.Webhook.URL == "" {
		return false
	}
	if len(j.Webhook.Events) == 0 {
		return s.Terminal()
	}
	for _, e := range j.Webhook.Events {
		if State(e) == s {
			return true
		}
	}
	return false
}

// DispatchHint is what a job's queue entry carries so that a worker can start
// it with one update of its record (jobstore's Claim) instead of a read and a
// compare-and-set: the algorithm, as "name@version". It is "" for a job whose
// record must be read first: a gang, or one whose webhook wants the running
// event (that notification is written in the same update as the state).
func (j *Job) DispatchHint() string {
	if j.GangSize > 1 || j.Notifies(Running) || j.Algorithm == "" || j.Version == "" {
		return ""
	}
	return j.Algorithm + "@" + j.Version
}

// ParseDispatchHint reads a DispatchHint; ok is false for "" or anything else.
func ParseDispatchHint(s string) (algorithm, version string, ok bool) {
	algorithm, version, ok = strings.Cut(s, "@")
	if !ok || algorithm == "" || version == "" {
		return "", "", false
	}
	return algorithm, version, true
}

var (
	idMu      sync.Mutex
	idEntropy = ulid.Monotonic(rand.Reader, 0)
)

// NewID returns a new job id: a ULID, so ids sort by creation time (and are
// strictly increasing within this process).
func NewID() string { return NewIDAt(time.Now()) }

// NewIDAt returns a new job id for the given creation time.
func NewIDAt(t time.Time) string {
	idMu.Lock()
	defer idMu.Unlock()
	return ulid.MustNew(ulid.Timestamp(t), idEntropy).String()
}

// ValidID reports whether id has the form of a job id.
func ValidID(id string) bool {
	_, err := ulid.ParseStrict(id)
	return err == nil
}
