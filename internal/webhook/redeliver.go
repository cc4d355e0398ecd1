package webhook

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/aigw/aigw/internal/mongoconn"
)

// ErrPending: the delivery is still being delivered, so there is nothing to
// send again yet.
var ErrPending = errors.New("webhook delivery is still pending")

// Redeliver sends a finished delivery (delivered or failed) of a tenant's job
// again: it becomes pending, due now, with the same webhook-id and payload
// (receivers deduplicate by webhook-id), and MaxAge counts from now. Another
// tenant's delivery, or one of another job, is ErrNotFound; a pending one is
// ErrPending.
func (s *Store) Redeliver(ctx context.Context, tenant, jobID, id string) (*Delivery, error) {
	now := s.now().UTC().Truncate(time.Millisecond)
	res, err := s.deliveries.UpdateOne(ctx,
		bson.D{{Key: "_id", Value: id}, {Key: "tenant", Value: tenant}, {Key: "job_id", Value: jobID},
			{Key: "status", Value: bson.D{{Key: "$in", Value: bson.A{Delivered, Failed}}}}},
		bson.D{{Key: "$set", Value: bson.D{
			{Key: "status", Value: Pending}, {Key: "next_attempt_at", Value: now},
			{Key: "redelivered_at", Value: now}, {Key: "claim", Value: newToken()},
		}}})
	if err != nil {
		return nil, fmt.Errorf("redeliver %s: %w", id, mongoconn.WrapUnavailable(err))
	}
	d, err := s.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	if d.Tenant != tenant || d.JobID != jobID {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	if res.ModifiedCount == 0 && d.Status == Pending {
		return nil, fmt.Errorf("%w: %s", ErrPending, id)
	}
	return d, nil
}
