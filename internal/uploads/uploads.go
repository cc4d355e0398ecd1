// Package uploads records the files tenants upload for their jobs' inputs
// (POST /v1/uploads): MongoDB collection "uploads", one document per upload
// with its tenant, announced size and SHA-256, and its object key
// (uploads/<tenant>/<id>). A tenant only ever finds its own uploads.
package uploads

import (
	"context"
	"errors"
	"net/url"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/aigw/aigw/internal/job"
	"github.com/aigw/aigw/internal/mongoconn"
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
