package webhook

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/aigw/aigw/internal/mongoconn"
	"github.com/aigw/aigw/internal/mongoindex"
)

// Status of a delivery.
type Status string

const (
	// Pending: not yet accepted; sent when NextAttemptAt has come.
	Pending Status = "pending"
	// Delivered: the receiver answered 2xx. Final.
	Delivered Status = "delivered"
	// Failed: the receiver answered 410 Gone, or MaxAge passed. Final.
	Failed Status = "failed"
)

// Attempt is one HTTP request of a delivery.
type Attempt struct {
	At         time.Time `json:"at" bson:"at"`
	StatusCode int       `json:"status_code,omitempty" bson:"status_code,omitempty"`
	Error      string    `json:"error,omitempty" bson:"error,omitempty"`
	DurationMS int64     `json:"duration_ms" bson:"duration_ms"`
}

// Delivery is one webhook message of one job state change and the log of its
// attempts: what the router's deliveries endpoint shows.
type Delivery struct {
	// ID is the webhook-id: msg_<job id>_<state>_<unix ms of the change>.
	ID     string `json:"id" bson:"_id"`
	Tenant string `json:"-" bson:"tenant"`
	JobID  string `json:"job_id" bson:"job_id"`
	// Event is the payload type, job.<state>.
	Event string `json:"event" bson:"event"`
	State string `json:"state" bson:"state"`
	URL   string `json:"url" bson:"url"`

	Status         Status     `json:"status" bson:"status"`
	Attempts       int        `json:"attempts" bson:"attempts"`
	LastStatusCode int        `json:"last_status_code,omitempty" bson:"last_status_code,omitempty"`
	LastError      string     `json:"last_error,omitempty" bson:"last_error,omitempty"`
	NextAttemptAt  *time.Time `json:"next_attempt_at,omitempty" bson:"next_attempt_at,omitempty"`
	CreatedAt      time.Time  `json:"created_at" bson:"created_at"`
	DeliveredAt    *time.Time `json:"delivered_at,omitempty" bson:"delivered_at,omitempty"`
	// RedeliveredAt is when it was last sent again on request (Redeliver);
	// MaxAge then counts from it.
	RedeliveredAt *time.Time `json:"redelivered_at,omitempty" bson:"redelivered_at,omitempty"`
	Log           []Attempt  `json:"attempts_log" bson:"attempts_log"`

	// Payload is the exact body sent on every attempt.
	Payload string `json:"-" bson:"payload"`
	// Claim is the compare-and-set token of the delivery: each claim and each
	// recorded attempt replaces it with a fresh random value, never reused.
	Claim string `json:"-" bson:"claim"`
}

// Store keeps deliveries (collection webhook_deliveries) and per-tenant secrets
// (collection webhook_secrets). It is safe for concurrent use.
type Store struct {
	deliveries *mongo.Collection
	secrets    *mongo.Collection
	now        func() time.Time
}

// NewStore returns a Store on db. Call EnsureIndexes once at start-up.
func NewStore(db *mongo.Database) *Store {
	return &Store{
		deliveries: db.Collection("webhook_deliveries"),
		secrets:    db.Collection("webhook_secrets"),
		now:        time.Now,
	}
}

// EnsureIndexes creates the indexes of the delivery log that do not exist yet.
// (Only missing ones: FerretDB drops the connection on a createIndexes of an
// index that exists.)
func (s *Store) EnsureIndexes(ctx context.Context) error {
	err := mongoindex.Ensure(ctx, s.deliveries,
		mongo.IndexModel{Keys: bson.D{{Key: "status", Value: 1}, {Key: "next_attempt_at", Value: 1}}, Options: options.Index().SetName("status_next")},
		mongo.IndexModel{Keys: bson.D{{Key: "job_id", Value: 1}}, Options: options.Index().SetName("job_id")},
	)
	return mongoconn.WrapUnavailable(err)
}

// Deliveries returns the deliveries of a tenant's job, oldest first; another
// tenant's job has none.
func (s *Store) Deliveries(ctx context.Context, tenant, jobID string) ([]Delivery, error) {
	cur, err := s.deliveries.Find(ctx, bson.D{{Key: "job_id", Value: jobID}, {Key: "tenant", Value: tenant}},
		options.Find().SetSort(bson.D{{Key: "created_at", Value: 1}, {Key: "_id", Value: 1}}))
	if err != nil {
		return nil, fmt.Errorf("list deliveries of %s: %w", jobID, mongoconn.WrapUnavailable(err))
	}
	out := []Delivery{}
	if err := cur.All(ctx, &out); err != nil {
		return nil, fmt.Errorf("list deliveries of %s: %w", jobID, mongoconn.WrapUnavailable(err))
	}
	return out, nil
}

// Get returns one delivery by its webhook-id.
func (s *Store) Get(ctx context.Context, id string) (*Delivery, error) {
	var d Delivery
	err := s.deliveries.FindOne(ctx, bson.D{{Key: "_id", Value: id}}).Decode(&d)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	if err != nil {
		return nil, fmt.Errorf("get delivery %s: %w", id, mongoconn.WrapUnavailable(err))
	}
	return &d, nil
}

// ErrNotFound: no such delivery.
var ErrNotFound = errors.New("webhook delivery not found")

// insert records d, pending; a delivery with the same id already recorded (a
// re-drain after a crash) is left as it is and inserted reports false.
func (s *Store) insert(ctx context.Context, d Delivery) (inserted bool, err error) {
	_, err = s.deliveries.InsertOne(ctx, d)
	if mongo.IsDuplicateKeyError(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("record delivery %s: %w", d.ID, mongoconn.WrapUnavailable(err))
	}
	return true, nil
}

// due returns up to limit pending deliveries whose next attempt has come.
func (s *Store) due(ctx context.Context, now time.Time, limit int) ([]Delivery, error) {
	cur, err := s.deliveries.Find(ctx,
		bson.D{{Key: "status", Value: Pending}, {Key: "next_attempt_at", Value: bson.D{{Key: "$lte", Value: now}}}},
		options.Find().SetSort(bson.D{{Key: "next_attempt_at", Value: 1}}).SetLimit(int64(limit)))
	if err != nil {
		return nil, fmt.Errorf("due deliveries: %w", mongoconn.WrapUnavailable(err))
	}
	var out []Delivery
	if err := cur.All(ctx, &out); err != nil {
		return nil, fmt.Errorf("due deliveries: %w", mongoconn.WrapUnavailable(err))
	}
	return out, nil
}

// claim takes d for one attempt: a compare-and-set on its claim token that also
// pushes its next attempt time out by lease, so neither another replica nor a
// later due scan picks it up while this attempt runs (and a crashed sender's
// claim lapses by itself). It reports false when another claimant won.
func (s *Store) claim(ctx context.Context, d *Delivery, lease time.Duration) (bool, error) {
	token := newToken()
	until := s.now().Add(lease).UTC().Truncate(time.Millisecond)
	res, err := s.deliveries.UpdateOne(ctx,
		bson.D{{Key: "_id", Value: d.ID}, {Key: "claim", Value: d.Claim}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "claim", Value: token}, {Key: "next_attempt_at", Value: until}}}})
	if err != nil {
		return false, fmt.Errorf("claim delivery %s: %w", d.ID, mongoconn.WrapUnavailable(err))
	}
	if res.ModifiedCount != 1 {
		return false, nil
	}
	d.Claim = token
	d.NextAttemptAt = &until
	return true, nil
}

// record stores the outcome of one attempt of a claimed delivery: the new status,
// the next attempt time (pending only) and the attempt log entry. It reports false
// when the claim had lapsed and another claimant took over.
func (s *Store) record(ctx context.Context, d *Delivery, a Attempt, status Status, next time.Time) (bool, error) {
	set := bson.D{
		{Key: "claim", Value: newToken()},
		{Key: "status", Value: status},
		{Key: "last_status_code", Value: a.StatusCode},
		{Key: "last_error", Value: a.Error},
	}
	var unset bson.D
	switch status {
	case Pending:
		set = append(set, bson.E{Key: "next_attempt_at", Value: next.UTC().Truncate(time.Millisecond)})
	case Delivered:
		set = append(set, bson.E{Key: "delivered_at", Value: a.At})
		unset = bson.D{{Key: "next_attempt_at", Value: ""}}
	default:
		unset = bson.D{{Key: "next_attempt_at", Value: ""}}
	}
	update := bson.D{
		{Key: "$set", Value: set},
		{Key: "$inc", Value: bson.D{{Key: "attempts", Value: 1}}},
		{Key: "$push", Value: bson.D{{Key: "attempts_log", Value: a}}},
	}
	if len(unset) > 0 {
		update = append(update, bson.E{Key: "$unset", Value: unset})
	}
	res, err := s.deliveries.UpdateOne(ctx, bson.D{{Key: "_id", Value: d.ID}, {Key: "claim", Value: d.Claim}}, update)
	if err != nil {
		return false, fmt.Errorf("record attempt of delivery %s: %w", d.ID, mongoconn.WrapUnavailable(err))
	}
	return res.ModifiedCount == 1, nil
}

func newToken() string {
	var b [12]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return hex.EncodeToString(b[:])
}

// secretRecord is one tenant's signing secret. Previous stays valid (signed
// with as well) until PreviousUntil, so receivers can switch over after a rotation.
type secretRecord struct {
	Tenant        string     `bson:"_id"`
	Secret        string     `bson:"secret"`
	CreatedAt     time.Time  `bson:"created_at"`
	Previous      string     `bson:"previous,omitempty"`
	PreviousUntil *time.Time `bson:"previous_until,omitempty"`
}

// RotationOverlap is how long the previous secret still signs after a rotation.
const RotationOverlap = 24 * time.Hour

// NewSecret returns a fresh secret: whsec_ and base64 of 32 random bytes.
func NewSecret() string {
	var b [32]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return SecretPrefix + base64.StdEncoding.EncodeToString(b[:])
}

// Secret returns tenant's webhook secret, creating it on first use.
func (s *Store) Secret(ctx context.Context, tenant string) (string, error) {
	rec, err := s.secretRecord(ctx, tenant)
	if err != nil {
		return "", err
	}
	return rec.Secret, nil
}

// signingSecrets returns the secrets a delivery is signed with: the current one,
// and the previous one during the overlap after a rotation.
func (s *Store) signingSecrets(ctx context.Context, tenant string) ([]string, error) {
	rec, err := s.secretRecord(ctx, tenant)
	if err != nil {
		return nil, err
	}
	out := []string{rec.Secret}
	if rec.Previous != "" && rec.PreviousUntil != nil && s.now().Before(*rec.PreviousUntil) {
		out = append(out, rec.Previous)
	}
	return out, nil
}

func (s *Store) secretRecord(ctx context.Context, tenant string) (*secretRecord, error) {
	if tenant == "" {
		return nil, errors.New("webhook secret: empty tenant")
	}
	for range 3 {
		var rec secretRecord
		err := s.secrets.FindOne(ctx, bson.D{{Key: "_id", Value: tenant}}).Decode(&rec)
		if err == nil {
			return &rec, nil
		}
		if !errors.Is(err, mongo.ErrNoDocuments) {
			return nil, fmt.Errorf("webhook secret of %s: %w", tenant, mongoconn.WrapUnavailable(err))
		}
		rec = secretRecord{Tenant: tenant, Secret: NewSecret(), CreatedAt: s.now().UTC().Truncate(time.Millisecond)}
		_, err = s.secrets.InsertOne(ctx, rec)
		if err == nil {
			return &rec, nil
		}
		if !mongo.IsDuplicateKeyError(err) {
			return nil, fmt.Errorf("create webhook secret of %s: %w", tenant, mongoconn.WrapUnavailable(err))
		}
		// Another replica created it first: read theirs.
	}
	return nil, fmt.Errorf("webhook secret of %s: kept changing while being created", tenant)
}

// RotateSecret replaces tenant's secret with a new one and returns it; the old
// one keeps signing (as a second signature) for RotationOverlap.
func (s *Store) RotateSecret(ctx context.Context, tenant string) (string, error) {
	old, err := s.secretRecord(ctx, tenant)
	if err != nil {
		return "", err
	}
	now := s.now().UTC().Truncate(time.Millisecond)
	until := now.Add(RotationOverlap)
	secret := NewSecret()
	res, err := s.secrets.UpdateOne(ctx, bson.D{{Key: "_id", Value: tenant}, {Key: "secret", Value: old.Secret}},
		bson.D{{Key: "$set", Value: bson.D{
			{Key: "secret", Value: secret}, {Key: "created_at", Value: now},
			{Key: "previous", Value: old.Secret}, {Key: "previous_until", Value: until},
		}}})
	if err != nil {
		return "", fmt.Errorf("rotate webhook secret of %s: %w", tenant, mongoconn.WrapUnavailable(err))
	}
	if res.ModifiedCount != 1 {
		return "", fmt.Errorf("rotate webhook secret of %s: rotated concurrently; retry", tenant)
	}
	return secret, nil
}
