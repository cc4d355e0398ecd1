// Package job defines the job lifecycle every part of aigw shares: the states a job
// moves through, the one table of allowed transitions, the job record and its id.
//
// MongoDB is the source of truth for a job; every transition is a compare-and-set on
// {_id, state: from}, so a job reaches exactly one terminal state even when two
// workers, or a worker and a cancel, race. This package is stdlib only (plus ulid).
package job

import (
	"errors"
	"fmt"
	"slices"
)

// State is the lifecycle state of a job. States are stored as these lowercase strings
// and never renamed.
type State string

const (
	// Queued: recorded and waiting in its pool's queue for a worker (also after a
	// retry, with attempt+1 and a not_before time).
	Queued State = "queued"
	// Running: a worker has taken the job and is executing an attempt.
	Running State = "running"
	// Succeeded: an attempt finished and its output is stored. Terminal.
	Succeeded State = "succeeded"
	// Failed: an attempt failed and no retry is left (or the error is not
	// retryable). Terminal.
	Failed State = "failed"
	// Canceled: canceled by its owner while queued or running; never retried. Terminal.
	Canceled State = "canceled"
	// Expired: its time to live passed before a worker started it. Terminal.
	Expired State = "expired"
)

// States returns every state, in lifecycle order.
func States() []State {
	return []State{Queued, Running, Succeeded, Failed, Canceled, Expired}
}

// Valid reports whether s is one of the defined states.
func (s State) Valid() bool { return slices.Contains(States(), s) }

// Terminal reports whether no further automatic transition leaves s.
func (s State) Terminal() bool {
	switch s {
	case Succeeded, Failed, Canceled, Expired:
		return true
	}
	return false
}

// ParseState parses a stored or user-given state name.
func ParseState(v string) (State, error) {
	s := State(v)
	if !s.Valid() {
		return "", fmt.Errorf("unknown job state %q (want one of %v)", v, States())
	}
	return s, nil
}

// transitions is the one table of allowed moves: from → the states it may go to.
//
//	queued    → running (a worker starts an attempt), canceled, expired (TTL passed),
//	            failed (the job cannot run at all: unknown algorithm, no node big enough)
//	running   → succeeded, failed, canceled, queued (automatic retry: attempt+1, not_before)
//	failed    → queued (manual retry through the API)
//	expired   → queued (manual retry through the API)
//	succeeded, canceled → nothing
var transitions = map[State][]State{
	Queued:    {Running, Canceled, Expired, Failed},
	Running:   {Succeeded, Failed, Canceled, Queued},
	Succeeded: nil,
	Failed:    {Queued},
	Canceled:  nil,
	Expired:   {Queued},
}

// Next returns the states that from may move to.
func Next(from State) []State { return slices.Clone(transitions[from]) }

// CanTransition reports whether the table allows from → to.
func CanTransition(from, to State) bool { return slices.Contains(transitions[from], to) }

// CheckTransition returns nil when from → to is allowed and an *InvalidTransitionError
// (matching ErrInvalidTransition) when it is not.
func CheckTransition(from, to State) error {
	if !from.Valid() || !to.Valid() || !CanTransition(from, to) {
		return &InvalidTransitionError{From: from, To: to}
	}
	return nil
}

// ErrInvalidTransition is matched (errors.Is) by every *InvalidTransitionError.
var ErrInvalidTransition = errors.New("invalid job state transition")

// InvalidTransitionError is a move that the transition table does not allow.
type InvalidTransitionError struct {
	From, To State
}

func (e *InvalidTransitionError) Error() string {
	if next := Next(e.From); len(next) > 0 {
		return fmt.Sprintf("job cannot go from %q to %q (allowed from %q: %v)", e.From, e.To, e.From, next)
	}
	return fmt.Sprintf("job cannot go from %q to %q (%q is final)", e.From, e.To, e.From)
}

// Is makes errors.Is(err, ErrInvalidTransition) true.
func (e *InvalidTransitionError) Is(target error) bool { return target == ErrInvalidTransition }
