// Package uploads records the files tenants upload for their jobs' inputs
// (POST /v1/uploads): MongoDB collection "uploads", one document per upload
// with its tenant, announced size and SHA-256, and its object key
// (uploads/<tenant>/<id>). A tenant only ever finds its own uploads.
//
// An upload lives until the orchestrator purges it: one no job referenced
// some time (a grace) after its upload URL expired, one that jobs referenced
// after its tenant's retention from the last reference. A purge first marks
// the record (Claim: from then on no submit can reference it), then deletes
// the object, then the record, so a purge cut short is finished by the next
// one and nothing is left behind in the store.
package uploads

import (
	"context"
	"errors"
	"net/url"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/aigw/aigw/internal/job"
	"github.com/aigw/aigw/internal/mongoconn"
	"github.com/aigw/aigw/internal/mongoindex"
)

// Collection is the MongoDB collection of uploads.
const Collection = "uploads"

// Upload is one announced upload.
type Upload struct {
	ID        string    `bson:"_id" json:"id"`
	Tenant    string    `bson:"tenant" json:"-"`
	Size      int64     `bson:"size" json:"size"`
	SHA256    string    `bson:"sha256" json:"sha256"`
	Key       string    `bson:"key" json:"-"`
	CreatedAt time.Time `bson:"created_at" json:"created_at"`
	// ExpiresAt is when its upload URL stops working.
	ExpiresAt time.Time `bson:"expires_at" json:"expires_at"`
	// UsedAt is when a submitted job last referenced it; nil: never.
	UsedAt *time.Time `bson:"used_at,omitempty" json:"-"`
	// PurgingAt is when a purge claimed it; no job may reference it since.
	PurgingAt *time.Time `bson:"purging_at,omitempty" json:"-"`
}

// ErrNotFound: no upload of that id for that tenant.
var ErrNotFound = errors.New("no such upload")

// Key is the object key of a tenant's upload.
func Key(tenant, id string) string { return "uploads/" + url.PathEscape(tenant) + "/" + id }

// Store keeps upload records.
type Store struct{ c *mongo.Collection }

// New returns a Store on db.
func New(db *mongo.Database) *Store { return &Store{c: db.Collection(Collection)} }

// Create records a new upload of tenant (its id, key and creation time are
// set here).
func (s *Store) Create(ctx context.Context, tenant string, size int64, sum string, now, expires time.Time) (Upload, error) {
	id := job.NewID()
	u := Upload{ID: id, Tenant: tenant, Size: size, SHA256: sum, Key: Key(tenant, id), CreatedAt: now.UTC(), ExpiresAt: expires.UTC()}
	if _, err := s.c.InsertOne(ctx, u); err != nil {
		return Upload{}, mongoconn.WrapUnavailable(err)
	}
	return u, nil
}

// EnsureIndexes creates the indexes the purge's queries use.
func (s *Store) EnsureIndexes(ctx context.Context) error {
	return mongoindex.Ensure(ctx, s.c,
		mongo.IndexModel{Keys: bson.D{{Key: "expires_at", Value: 1}}, Options: options.Index().SetName("expires_at")},
		mongo.IndexModel{Keys: bson.D{{Key: "tenant", Value: 1}, {Key: "used_at", Value: 1}}, Options: options.Index().SetName("tenant_used_at")},
		mongo.IndexModel{Keys: bson.D{{Key: "purging_at", Value: 1}}, Options: options.Index().SetName("purging_at")},
	)
}

// Use returns tenant's upload id and records that a job references it now
// (which keeps it for its tenant's retention from now). Another tenant's
// upload, and one a purge has claimed, is ErrNotFound.
func (s *Store) Use(ctx context.Context, tenant, id string, now time.Time) (Upload, error) {
	var u Upload
	err := s.c.FindOneAndUpdate(ctx,
		bson.D{{Key: "_id", Value: id}, {Key: "tenant", Value: tenant}, {Key: "purging_at", Value: bson.D{{Key: "$exists", Value: false}}}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "used_at", Value: now.UTC()}}}},
		options.FindOneAndUpdate().SetReturnDocument(options.After)).Decode(&u)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return Upload{}, ErrNotFound
	}
	if err != nil {
		return Upload{}, mongoconn.WrapUnavailable(err)
	}
	return u, nil
}

// PurgeFilter selects uploads whose time is up.
type PurgeFilter struct {
	// Unused selects uploads no job referenced whose URL expired before
	// Before, of every tenant. Otherwise the filter selects referenced
	// uploads of Tenant (or, when Tenant is empty, of every tenant but
	// Except) last referenced, and expired, before Before.
	Unused bool
	Tenant string
	Except []string
	Before time.Time
}

func (f PurgeFilter) bson() bson.D {
	before := bson.D{{Key: "$lt", Value: f.Before.UTC()}}
	d := bson.D{{Key: "expires_at", Value: before}, {Key: "purging_at", Value: bson.D{{Key: "$exists", Value: false}}}}
	if f.Unused {
		return append(d, bson.E{Key: "used_at", Value: bson.D{{Key: "$exists", Value: false}}})
	}
	d = append(d, bson.E{Key: "used_at", Value: before})
	switch {
	case f.Tenant != "":
		d = append(d, bson.E{Key: "tenant", Value: f.Tenant})
	case len(f.Except) > 0:
		d = append(d, bson.E{Key: "tenant", Value: bson.D{{Key: "$nin", Value: f.Except}}})
	}
	return d
}

// Claim marks up to limit uploads that f selects as being purged (at now)
// and returns how many it marked. A submit that references one at the same
// moment either marks it used first (it is no longer selected) or finds it
// claimed (ErrNotFound).
func (s *Store) Claim(ctx context.Context, f PurgeFilter, now time.Time, limit int) (int, error) {
	cur, err := s.c.Find(ctx, f.bson(), options.Find().SetProjection(bson.D{{Key: "_id", Value: 1}}).SetLimit(int64(limit)))
	if err != nil {
		return 0, mongoconn.WrapUnavailable(err)
	}
	var ids []struct {
		ID string `bson:"_id"`
	}
	if err := cur.All(ctx, &ids); err != nil {
		return 0, mongoconn.WrapUnavailable(err)
	}
	if len(ids) == 0 {
		return 0, nil
	}
	in := make(bson.A, len(ids))
	for i, d := range ids {
		in[i] = d.ID
	}
	// The filter again: each document is marked only if it still matches.
	res, err := s.c.UpdateMany(ctx, append(f.bson(), bson.E{Key: "_id", Value: bson.D{{Key: "$in", Value: in}}}),
		bson.D{{Key: "$set", Value: bson.D{{Key: "purging_at", Value: now.UTC()}}}})
	if err != nil {
		return 0, mongoconn.WrapUnavailable(err)
	}
	return int(res.ModifiedCount), nil
}

// Purging returns up to limit uploads a purge claimed and has not finished.
func (s *Store) Purging(ctx context.Context, limit int) ([]Upload, error) {
	cur, err := s.c.Find(ctx, bson.D{{Key: "purging_at", Value: bson.D{{Key: "$exists", Value: true}}}},
		options.Find().SetSort(bson.D{{Key: "_id", Value: 1}}).SetLimit(int64(limit)))
	if err != nil {
		return nil, mongoconn.WrapUnavailable(err)
	}
	var out []Upload
	if err := cur.All(ctx, &out); err != nil {
		return nil, mongoconn.WrapUnavailable(err)
	}
	return out, nil
}

// Keep takes back a purge's claim of upload id: it can be referenced again,
// and counts as referenced at now.
func (s *Store) Keep(ctx context.Context, id string, now time.Time) error {
	_, err := s.c.UpdateOne(ctx, bson.D{{Key: "_id", Value: id}, {Key: "purging_at", Value: bson.D{{Key: "$exists", Value: true}}}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "used_at", Value: now.UTC()}}}, {Key: "$unset", Value: bson.D{{Key: "purging_at", Value: ""}}}})
	return mongoconn.WrapUnavailable(err)
}

// Get returns tenant's upload id; another tenant's is ErrNotFound.
func (s *Store) Get(ctx context.Context, tenant, id string) (Upload, error) {
	var u Upload
	err := s.c.FindOne(ctx, bson.D{{Key: "_id", Value: id}, {Key: "tenant", Value: tenant}}).Decode(&u)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return Upload{}, ErrNotFound
	}
	if err != nil {
		return Upload{}, mongoconn.WrapUnavailable(err)
	}
	return u, nil
}

// Delete removes a record (the object is the caller's).
func (s *Store) Delete(ctx context.Context, id string) error {
	_, err := s.c.DeleteOne(ctx, bson.D{{Key: "_id", Value: id}})
	return mongoconn.WrapUnavailable(err)
}
