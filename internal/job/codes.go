package job

import "time"

// Failure codes: the stable Error.Code values of a failed attempt or job.
// Every part of aigw takes them from here.
const (
	// Given by a run of the algorithm (the worker's runtime).
	CodeRuntime    = "runtime_error"       // could not start, or exited non-zero: retried
	CodeTimeout    = "timeout"             // ran past its execution timeout: retried
	CodeBadOutput  = "bad_output"          // output not JSON or over the limit: not retried
	CodeHTTP       = "http_error"          // the model server answered non-2xx: 5xx retried, 4xx not
	CodeStopped    = "stopped"             // stopped from outside (cancel, lost lease, shutdown)
	CodeArtifact   = "artifact_error"      // the run's files could not be stored: retried
	CodeNotAllowed = "command_not_allowed" // the program is outside the allowed directories: not retried
	CodeAsset      = "asset_error"         // an algorithm's asset could not be had (download, budget, disk): retried unless it is not what its definition says
	CodeInput      = "input_error"         // an input file could not be fetched or is not what its reference says: retried only when its source did not answer

	// Given by the lifecycle itself.
	CodeLost             = "lost"              // the attempt's worker died (lease or timeout ran out)
	CodeShutdown         = "shutdown"          // handed back by a worker shutting down
	CodeUnknownAlgorithm = "unknown_algorithm" // the job names no registered definition
	CodeUnschedulable    = "unschedulable"     // no worker of the pool has enough GPUs
	CodeCanceled         = "canceled"          // canceled by its owner
	CodeExpired          = "expired"           // its time to live passed while queued
)

// RetryableCode reports whether an attempt that failed with code is worth
// another attempt by its code alone: a run that crashed, timed out or whose
// files could not be stored. (An http_error is retried for a 5xx answer only,
// which its code does not say.)
func RetryableCode(code string) bool {
	switch code {
	case CodeRuntime, CodeTimeout, CodeArtifact:
		return true
	}
	return false
}

// Timeout is the effective execution timeout of one attempt of j: its own
// execution_timeout when set, else algorithmTimeout (its algorithm's).
func (j *Job) Timeout(algorithmTimeout time.Duration) time.Duration {
	if j.ExecutionTimeoutMS > 0 {
		return time.Duration(j.ExecutionTimeoutMS) * time.Millisecond
	}
	return algorithmTimeout
}
