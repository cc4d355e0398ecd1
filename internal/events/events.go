// Package events is the per-job event stream in Redis: state changes,
// progress, log lines and the output of a job, in order, so the API can serve
// them as Server-Sent Events (resumable: an event's id is its stream entry id)
// and wake a waiting submit. It also carries cancel requests from the API to
// whichever worker holds the job.
//
// Keys (one hash tag per job, so a job's keys share a slot and jobs spread
// over the cluster):
//
//	aigw:{job:<id>}:events  stream, capped at MaxLen entries; fields "type", "data"
//	aigw:{job:<id>}:cancel  string, set when a cancel is requested
package events

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/aigw/aigw/internal/job"
	"github.com/aigw/aigw/internal/rediskeys"
)

// Type is the kind of an event; it is the SSE event name.
type Type string

const (
	TypeState    Type = "state"
	TypeProgress Type = "progress"
	TypeLog      Type = "log"
	TypeOutput   Type = "output"
)

// Event is one entry of a job's stream. Data is the JSON of State, Progress,
// Log or Output, by Type.
type Event struct {
	ID   string          `json:"id"`
	Type Type            `json:"type"`
	Data json.RawMessage `json:"data"`
}

// State is the data of a state event.
type State struct {
	State   job.State  `json:"state"`
	Attempt int        `json:"attempt"`
	Worker  string     `json:"worker,omitempty"`
	Error   *job.Error `json:"error,omitempty"`
	At      time.Time  `json:"at"`
}

// Progress is the data of a progress event (0 ≤ progress ≤ 1).
type Progress struct {
	Progress float64   `json:"progress"`
	Message  string    `json:"message,omitempty"`
	At       time.Time `json:"at"`
}

// Log is the data of a log event: a batch of lines.
type Log struct {
	Lines []string  `json:"lines"`
	At    time.Time `json:"at"`
}

// Output is the data of an output event.
type Output struct {
	Output    json.RawMessage `json:"output,omitempty"`
	Artifacts []job.Artifact  `json:"artifacts,omitempty"`
	At        time.Time       `json:"at"`
}

// Terminal reports whether e is a state event with a terminal state.
func (e Event) Terminal() bool {
	if e.Type != TypeState {
		return false
	}
	var s State
	return json.Unmarshal(e.Data, &s) == nil && s.State.Terminal()
}

// Config tunes a Stream.
type Config struct {
	// MaxLen caps each job's stream (approximately; default 1000 entries).
	MaxLen int64
	// ActiveTTL is how long a stream lives after its last event while the job is
	// not finished (default 24h); DoneTTL after a terminal state (default 1h).
	ActiveTTL, DoneTTL time.Duration
	// CancelTTL is how long a cancel request is kept (default 24h).
	CancelTTL time.Duration
}

// Stream publishes and reads job events. Safe for concurrent use.
type Stream struct {
	rdb redis.UniversalClient
	cfg Config
}

// New returns a Stream on rdb.
func New(rdb redis.UniversalClient, cfg Config) *Stream {
	if cfg.MaxLen <= 0 {
		cfg.MaxLen = 1000
	}
	if cfg.ActiveTTL <= 0 {
		cfg.ActiveTTL = 24 * time.Hour
	}
	if cfg.DoneTTL <= 0 {
		cfg.DoneTTL = time.Hour
	}
	if cfg.CancelTTL <= 0 {
		cfg.CancelTTL = 24 * time.Hour
	}
	return &Stream{rdb: rdb, cfg: cfg}
}

// Key is the stream key of job id.
func Key(jobID string) string { return rediskeys.JobEvents(jobID) }

// CancelKey is the cancel-request key of job id.
func CancelKey(jobID string) string { return rediskeys.JobCancel(jobID) }

// Publish appends an event of type t with data v (marshalled to JSON) and
// returns its id. A terminal state event shortens the stream's life to DoneTTL.
func (s *Stream) Publish(ctx context.Context, jobID string, t Type, v any) (string, error) {
	data, err := json.Marshal(v)
	if err != nil {
		return "", fmt.Errorf("event %s of job %s: %w", t, jobID, err)
	}
	ttl := s.cfg.ActiveTTL
	if (Event{Type: t, Data: data}).Terminal() {
		ttl = s.cfg.DoneTTL
	}
	key := Key(jobID)
	pipe := s.rdb.Pipeline()
	add := pipe.XAdd(ctx, &redis.XAddArgs{Stream: key, MaxLen: s.cfg.MaxLen, Approx: true,
		Values: []any{"type", string(t), "data", data}})
	pipe.PExpire(ctx, key, ttl)
	if _, err := pipe.Exec(ctx); err != nil {
		return "", fmt.Errorf("publish %s event of job %s: %w", t, jobID, err)
	}
	return add.Val(), nil
}

// PublishState publishes a state event.
func (s *Stream) PublishState(ctx context.Context, j *job.Job) (string, error) {
	return s.Publish(ctx, j.ID, TypeState, State{State: j.State, Attempt: j.Attempt, Worker: j.Worker, Error: j.Error, At: j.UpdatedAt})
}

// Read returns up to count events of job id after event id after ("" or "0"
// for the beginning), waiting up to block for one when there is none yet
// (block ≤ 0: do not wait). No events within block is nil, nil.
func (s *Stream) Read(ctx context.Context, jobID, after string, count int64, block time.Duration) ([]Event, error) {
	args := readArgs(jobID, after, count)
	if block > 0 {
		args.Block = block
	}
	res, err := s.rdb.XRead(ctx, args).Result()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read events of job %s: %w", jobID, err)
	}
	return eventsOf(res), nil
}

// readArgs is the non-blocking XREAD of up to count (default 100) events of
// job jobID after event id after ("" for the beginning).
func readArgs(jobID, after string, count int64) *redis.XReadArgs {
	if after == "" {
		after = "0"
	}
	if count <= 0 {
		count = 100
	}
	return &redis.XReadArgs{Streams: []string{Key(jobID), after}, Count: count, Block: -1}
}

// eventsOf turns XREAD's answer into events.
func eventsOf(res []redis.XStream) []Event {
	var out []Event
	for _, st := range res {
		for _, m := range st.Messages {
			t, _ := m.Values["type"].(string)
			d, _ := m.Values["data"].(string)
			out = append(out, Event{ID: m.ID, Type: Type(t), Data: json.RawMessage(d)})
		}
	}
	return out
}

// ValidID reports whether id has the form of an event id (a stream entry id),
// as a client's Last-Event-ID must.
func ValidID(id string) bool {
	var ms, seq uint64
	n, err := fmt.Sscanf(id, "%d-%d", &ms, &seq)
	return err == nil && n == 2 && fmt.Sprintf("%d-%d", ms, seq) == id
}

// RequestCancel records a cancel request for job id; a worker holding the job
// sees it at its next check (within a second).
func (s *Stream) RequestCancel(ctx context.Context, jobID string) error {
	if err := s.rdb.Set(ctx, CancelKey(jobID), time.Now().UnixMilli(), s.cfg.CancelTTL).Err(); err != nil {
		return fmt.Errorf("request cancel of job %s: %w", jobID, err)
	}
	return nil
}

// CancelRequested returns the subset of ids whose cancel was requested, in one
// pipelined round trip per master.
func (s *Stream) CancelRequested(ctx context.Context, ids ...string) (map[string]bool, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.IntCmd, len(ids))
	for i, id := range ids {
		cmds[i] = pipe.Exists(ctx, CancelKey(id))
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, fmt.Errorf("check cancel requests: %w", err)
	}
	out := make(map[string]bool)
	for i, c := range cmds {
		if c.Val() > 0 {
			out[ids[i]] = true
		}
	}
	return out, nil
}
