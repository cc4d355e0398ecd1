// Package executorapi is the wire format of the executor API (served by the
// executors function, functions/executors) and its client, which
// `aigw-worker --join` and the tests use. An executor holds a pool-scoped
// token and nothing else: no Redis or MongoDB address or credential.
//
//	POST   /admin/executors                  admin token: {"pool","name"} → {"id","token"} (token shown once)
//	DELETE /admin/executors/{id}             admin token: revoke; its jobs go back to the queue
//	POST   /v1/executor/register             resources, GPUs, labels, version → lease and heartbeat periods
//	POST   /v1/executor/claim                long poll: up to max jobs of the credential's pool
//	POST   /v1/executor/heartbeat            keeps the held jobs' leases; answers cancels and lost jobs
//	POST   /v1/executor/jobs/{id}/events     progress and log lines of a held job
//	PUT    /v1/executor/jobs/{id}/artifacts/{name}?attempt=N   one file of a held job
//	GET    /v1/executor/jobs/{id}/files/{upload}?attempt=N     an upload the held job's input refers to
//	POST   /v1/executor/jobs/{id}/finish     output or failure of a held job
package executorapi

import (
	"encoding/json"

	"github.com/aigw/aigw/internal/algorithm"
	"github.com/aigw/aigw/internal/events"
	"github.com/aigw/aigw/internal/registry"
)

// CreateRequest asks for a new executor credential.
type CreateRequest struct {
	Pool string `json:"pool"`
	Name string `json:"name"`
}

// Created is a new credential; Token is shown this once.
type Created struct {
	ID    string `json:"id"`
	Token string `json:"token"`
	Pool  string `json:"pool"`
	Name  string `json:"name"`
}

// Register is what an executor says about itself.
type Register struct {
	Version  string            `json:"version"`
	Slots    int               `json:"slots"`
	CPUs     int               `json:"cpus,omitempty"`
	MemoryMB int64             `json:"memory_mb,omitempty"`
	GPUs     []registry.GPU    `json:"gpus,omitempty"`
	Labels   map[string]string `json:"labels,omitempty"`
	// CPUFallback: GPU algorithms run on the CPU here (no GPU).
	CPUFallback bool `json:"cpu_fallback,omitempty"`
}

// Registered answers Register: who the executor is and how often to call.
type Registered struct {
	ID   string `json:"id"`
	Pool string `json:"pool"`
	Name string `json:"name"`
	// Node is the executor's name in job records and the worker registry.
	Node string `json:"node"`
	// LeaseMS: a held job goes back to the queue after this long without a
	// heartbeat. HeartbeatMS: how often to send one (well within the lease,
	// and often enough to learn of a cancel within a second).
	LeaseMS     int64 `json:"lease_ms"`
	HeartbeatMS int64 `json:"heartbeat_ms"`
	// OutputLimit bounds a job's output in bytes (413 above it).
	OutputLimit int64 `json:"output_limit"`
}

// ClaimRequest asks for up to Max jobs (default 1), waiting up to WaitMS for
// one (capped by the server). Pool, when set, must be the credential's (else 403).
type ClaimRequest struct {
	Pool   string `json:"pool,omitempty"`
	Max    int    `json:"max,omitempty"`
	WaitMS int64  `json:"wait_ms,omitempty"`
}

// Claimed is the jobs claimed (none: nothing came within the wait).
type Claimed struct {
	Jobs []Job `json:"jobs"`
}

// Job is a claimed job: running on this executor, attempt Attempt.
type Job struct {
	ID         string                `json:"id"`
	Attempt    int                   `json:"attempt"`
	Algorithm  string                `json:"algorithm"`
	Version    string                `json:"version"`
	Input      json.RawMessage       `json:"input,omitempty"`
	TimeoutMS  int64                 `json:"timeout_ms"`
	Definition *algorithm.Definition `json:"definition"`
}

// Heartbeat lists the jobs the executor is running.
type Heartbeat struct {
	Jobs      []string       `json:"jobs"`
	SlotsBusy int            `json:"slots_busy"`
	GPUs      []registry.GPU `json:"gpus,omitempty"`
}

// HeartbeatAnswer says which held jobs to stop: Cancel (their owner canceled
// them: stop and finish with outcome canceled) and Lost (no longer this
// executor's: stop, finish nothing).
type HeartbeatAnswer struct {
	Cancel  []string `json:"cancel"`
	Lost    []string `json:"lost"`
	LeaseMS int64    `json:"lease_ms"`
}

// Event types.
const (
	EventProgress = "progress"
	EventLog      = "log"
)

// Event is progress or log lines of a held job.
type Event struct {
	Attempt  int              `json:"attempt"`
	Type     string           `json:"type"`
	Progress *events.Progress `json:"progress,omitempty"`
	Lines    []string         `json:"lines,omitempty"`
}

// Outcomes of Finish.
const (
	OutcomeSucceeded  = "succeeded"
	OutcomeFailed     = "failed"
	OutcomeCanceled   = "canceled"    // stopped on a cancel the heartbeat answered
	OutcomeHandedBack = "handed_back" // the executor is shutting down: run it elsewhere
)

// Finish ends a held attempt.
type Finish struct {
	Attempt     int             `json:"attempt"`
	Outcome     string          `json:"outcome"`
	Output      json.RawMessage `json:"output,omitempty"`
	Error       *Failure        `json:"error,omitempty"`
	Log         string          `json:"log,omitempty"`
	ColdStartMS int64           `json:"cold_start_ms,omitempty"`
}

// Failure is why an attempt failed; Retryable asks for another attempt
// (while the job has retries left).
type Failure struct {
	Code      string `json:"code"`
	Message   string `json:"message"`
	Retryable bool   `json:"retryable,omitempty"`
}

// Finished is the job's state after Finish.
type Finished struct {
	State   string `json:"state"`
	Attempt int    `json:"attempt"`
}
