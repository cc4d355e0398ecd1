package router

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/aigw/aigw/internal/events"
	"github.com/aigw/aigw/internal/job"
	"github.com/aigw/aigw/internal/web"
)

// maxBlock bounds one blocking read of an event stream, so a request whose
// client went away ends soon after.
const maxBlock = 5 * time.Second

// lastEventID returns where a client resumes an event stream: the
// Last-Event-ID header, else the last_event_id query parameter; "" is the
// start. A value that is not an event id is a 400.
func lastEventID(header, query string) (string, error) {
	id := header
	if id == "" {
		id = query
	}
	if id == "" {
		return "", nil
	}
	if !events.ValidID(id) {
		return "", web.BadRequest("Last-Event-ID %q is not an event id (want the id: of an event received, e.g. 1700000000000-0)", id)
	}
	return id, nil
}

// jobEvents: GET /v1/jobs/{id}/events serves the job's events as Server-Sent
// Events (`id:`, `event:`, `data:`), from the start or after Last-Event-ID,
// in stream order with no gap and no duplicate; a `: ping` comment when idle
// for Heartbeat; the stream ends after the terminal state event. When the
// stream's cap trimmed events the client has not seen, it says so first with
// an `event: gap` (no id; data events.Gap) and goes on from the oldest kept.
func (a *api) jobEvents(w http.ResponseWriter, r *http.Request) error {
	after, err := lastEventID(r.Header.Get("Last-Event-ID"), r.URL.Query().Get("last_event_id"))
	if err != nil {
		return err
	}
	j, err := a.tenantJob(r)
	if err != nil {
		return err
	}
	ctx := r.Context()
	// Read once before answering, so that a Redis failure is still a 503.
	evs, gap, err := a.Events.ReadResume(ctx, j.ID, after, 100)
	if err != nil {
		return err
	}
	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	if err := rc.Flush(); err != nil {
		return nil // the connection cannot stream; the client sees an empty stream
	}
	if gap != nil {
		if err := writeGap(w, gap); err != nil {
			return nil
		}
	}
	finished := j.State.Terminal()
	for {
		for _, e := range evs {
			if err := writeEvent(w, e); err != nil {
				return nil
			}
			after = e.ID
			if e.Terminal() {
				_ = rc.Flush()
				return nil
			}
		}
		if len(evs) > 0 {
			if rc.Flush() != nil {
				return nil
			}
		}
		if finished && len(evs) == 0 {
			// The job ended before this request and its stream holds no more
			// (it expired or was trimmed): end with its final state, as recorded.
			_ = writeFinalState(w, j)
			_ = rc.Flush()
			return nil
		}
		block := min(a.Heartbeat, maxBlock)
		if finished {
			block = -1
		}
		evs, err = a.readQuiet(ctx, j.ID, after, a.Heartbeat, block)
		if err != nil {
			a.log.WarnContext(ctx, "event stream ended", "job_id", j.ID, "err", err)
			return nil
		}
		if evs == nil && !finished {
			if _, err := io.WriteString(w, ": ping\n\n"); err != nil || rc.Flush() != nil {
				return nil
			}
		}
	}
}

// readQuiet reads events after after, blocking in slices of block, until
// there are events or quiet has passed with none (then nil, nil).
func (a *api) readQuiet(ctx context.Context, id, after string, quiet, block time.Duration) ([]events.Event, error) {
	deadline := time.Now().Add(quiet)
	for {
		evs, err := a.Events.Read(ctx, id, after, 100, block)
		if err != nil || len(evs) > 0 || block <= 0 {
			return evs, err
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		left := time.Until(deadline)
		if left <= 0 {
			return nil, nil
		}
		block = min(block, left)
	}
}

// writeEvent writes one event in the SSE format; data lines are split on
// newlines (the data is JSON, which has none unless it is pretty-printed).
func writeEvent(w io.Writer, e events.Event) error {
	var b strings.Builder
	fmt.Fprintf(&b, "id: %s\nevent: %s\n", e.ID, e.Type)
	for line := range strings.SplitSeq(string(e.Data), "\n") {
		fmt.Fprintf(&b, "data: %s\n", strings.TrimSuffix(line, "\r"))
	}
	b.WriteByte('\n')
	_, err := io.WriteString(w, b.String())
	return err
}

// writeGap writes the gap event, without an id: the client's Last-Event-ID
// stays its own until the next event.
func writeGap(w io.Writer, g *events.Gap) error {
	data, err := json.Marshal(g)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "event: gap\ndata: %s\n\n", data)
	return err
}

// writeFinalState writes the state event of a finished job from its record,
// without an id (there is nothing to resume after it).
func writeFinalState(w io.Writer, j *job.Job) error {
	at := j.UpdatedAt
	if j.FinishedAt != nil {
		at = *j.FinishedAt
	}
	data, err := json.Marshal(events.State{State: j.State, Attempt: j.Attempt, Worker: j.Worker, Error: j.Error, At: at})
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "event: %s\ndata: %s\n\n", events.TypeState, data)
	return err
}

// waitFinished waits up to d for the tenant's job to finish, woken by its
// event stream (no polling of MongoDB), and returns the finished job from
// MongoDB; nil when it did not finish in time. A Redis or MongoDB failure
// while waiting is logged and ends the wait: the job was submitted, so the
// client gets its 202 rather than an error that invites a second submit.
func (a *api) waitFinished(ctx context.Context, tenant, id string, d time.Duration) *job.Job {
	deadline := time.Now().Add(d)
	after := "0"
	for {
		left := time.Until(deadline)
		if left < time.Millisecond {
			return nil
		}
		evs, err := a.Events.Read(ctx, id, after, 100, min(left, maxBlock))
		if ctx.Err() != nil {
			return nil // the client went away
		}
		if err != nil {
			a.log.WarnContext(ctx, "wait for job ended early", "job_id", id, "err", err)
			return nil
		}
		for _, e := range evs {
			after = e.ID
			if !e.Terminal() {
				continue
			}
			j, err := a.Jobs.Get(ctx, tenant, id)
			if err != nil {
				a.log.WarnContext(ctx, "finished job not read", "job_id", id, "err", err)
				return nil
			}
			if j.State.Terminal() {
				return j
			}
		}
	}
}
