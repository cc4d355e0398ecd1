package events

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/redis/go-redis/v9"
)

// Gap says that a reader resuming after an event id cannot get every event
// that followed it: the stream's cap (MaxLen) trimmed its oldest events, and
// the reader's id is older than the oldest event kept.
type Gap struct {
	// After is the id the reader resumed after ("0" for the start).
	After string `json:"after"`
	// FirstID is the oldest event still kept; reading goes on from there.
	FirstID string `json:"first_id"`
	// Dropped is how many of the job's oldest events were trimmed away (some
	// or all of them came after After).
	Dropped int64 `json:"dropped"`
}

// ReadResume is Read without waiting, for a reader that starts or resumes a
// stream: it also returns the Gap when events after after were trimmed away
// (nil when none were), the events and the gap seen at one instant (one
// MULTI on the job's slot), so a trim between the two cannot go unnoticed.
func (s *Stream) ReadResume(ctx context.Context, jobID, after string, count int64) ([]Event, *Gap, error) {
	args := readArgs(jobID, after, count)
	after = args.Streams[1] // as sent: "0" for the start
	var info *redis.XInfoStreamCmd
	var read *redis.XStreamSliceCmd
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		info = p.XInfoStream(ctx, args.Streams[0])
		read = p.XRead(ctx, args)
		return nil
	})
	if err != nil && !noSuchKey(err) && !errors.Is(err, redis.Nil) {
		return nil, nil, fmt.Errorf("read events of job %s: %w", jobID, err)
	}
	res, err := read.Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, nil, fmt.Errorf("read events of job %s: %w", jobID, err)
	}
	out := eventsOf(res)
	st, err := info.Result()
	switch {
	case noSuchKey(err):
		return out, nil, nil // no stream (expired, or nothing published): nothing was trimmed
	case err != nil:
		return nil, nil, fmt.Errorf("read events of job %s: %w", jobID, err)
	}
	dropped := st.EntriesAdded - st.Length
	if dropped <= 0 || st.FirstEntry.ID == "" || compareIDs(after, st.FirstEntry.ID) >= 0 {
		return out, nil, nil
	}
	// The reader's id is older than the oldest event kept, and events were
	// trimmed: only when its id was the very last trimmed one did it miss
	// nothing, which the stream cannot tell, so it is told of a gap.
	return out, &Gap{After: after, FirstID: st.FirstEntry.ID, Dropped: dropped}, nil
}

// noSuchKey reports Redis's answer to XINFO STREAM on a missing key.
func noSuchKey(err error) bool {
	return err != nil && strings.Contains(err.Error(), "no such key")
}

// compareIDs orders two stream entry ids ("ms-seq", or "0"); an id that does
// not parse orders first.
func compareIDs(a, b string) int {
	am, as := parseID(a)
	bm, bs := parseID(b)
	if c := cmp.Compare(am, bm); c != 0 {
		return c
	}
	return cmp.Compare(as, bs)
}

func parseID(id string) (ms, seq uint64) {
	if _, err := fmt.Sscanf(id, "%d-%d", &ms, &seq); err != nil {
		_, _ = fmt.Sscanf(id, "%d", &ms)
		seq = 0
	}
	return ms, seq
}
