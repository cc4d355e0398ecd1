package clients

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/aigw/aigw/internal/mongoconn"
	"github.com/aigw/aigw/internal/mongoindex"
)

// Collection is the MongoDB collection of API clients.
const Collection = "clients"

// Store keeps clients in MongoDB. It is safe for concurrent use.
type Store struct {
	coll *mongo.Collection
	now  func() time.Time
}

// NewStore returns a Store on db and creates its indexes (idempotent). now is
// the clock (nil means time.Now).
func NewStore(ctx context.Context, db *mongo.Database, now func() time.Time) (*Store, error) {
	if now == nil {
		now = time.Now
	}
	s := &Store{coll: db.Collection(Collection), now: now}
	err := mongoindex.Ensure(ctx, s.coll, mongo.IndexModel{
		Keys: bson.D{{Key: "tenant", Value: 1}, {Key: "created_at", Value: 1}}, Options: options.Index().SetName("tenant_created"),
	})
	if err != nil {
		return nil, fmt.Errorf("create client indexes: %w", mongoconn.WrapUnavailable(err))
	}
	return s, nil
}

// Create validates spec, stores a new client with a fresh id and secret, and
// returns the client and its secret, which is not kept and cannot be shown again.
func (s *Store) Create(ctx context.Context, spec Spec) (Client, string, error) {
	spec, err := spec.Normalize()
	if err != nil {
		return Client{}, "", err
	}
	secret, err := newSecret()
	if err != nil {
		return Client{}, "", err
	}
	hash, err := HashSecret(secret)
	if err != nil {
		return Client{}, "", err
	}
	c := Client{ID: newID(), Name: spec.Name, Tenant: spec.Tenant, Scopes: spec.Scopes, SecretHash: hash,
		CreatedAt: s.now().UTC().Truncate(time.Millisecond)}
	if _, err := s.coll.InsertOne(ctx, c); err != nil {
		return Client{}, "", fmt.Errorf("insert client: %w", mongoconn.WrapUnavailable(err))
	}
	return c, secret, nil
}

// Get returns the client id, revoked or not.
func (s *Store) Get(ctx context.Context, id string) (Client, error) {
	var c Client
	err := s.coll.FindOne(ctx, bson.D{{Key: "_id", Value: id}}).Decode(&c)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return Client{}, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	if err != nil {
		return Client{}, fmt.Errorf("get client %s: %w", id, mongoconn.WrapUnavailable(err))
	}
	return c, nil
}

// MaxList bounds List.
const MaxList = 1000

// List returns the clients of tenant ("" for all), oldest first, at most MaxList.
func (s *Store) List(ctx context.Context, tenant string) ([]Client, error) {
	filter := bson.D{}
	if tenant != "" {
		filter = bson.D{{Key: "tenant", Value: tenant}}
	}
	cur, err := s.coll.Find(ctx, filter, options.Find().
		SetSort(bson.D{{Key: "created_at", Value: 1}, {Key: "_id", Value: 1}}).SetLimit(MaxList))
	if err != nil {
		return nil, fmt.Errorf("list clients: %w", mongoconn.WrapUnavailable(err))
	}
	out := []Client{}
	if err := cur.All(ctx, &out); err != nil {
		return nil, fmt.Errorf("list clients: %w", mongoconn.WrapUnavailable(err))
	}
	return out, nil
}

// RevokeTenant revokes every client of tenant that is not revoked yet (a
// deleted tenant) and returns how many it revoked.
func (s *Store) RevokeTenant(ctx context.Context, tenant string) (int, error) {
	if tenant == "" {
		return 0, errors.New("revoke clients: tenant is required")
	}
	res, err := s.coll.UpdateMany(ctx,
		bson.D{{Key: "tenant", Value: tenant}, {Key: "revoked_at", Value: bson.D{{Key: "$exists", Value: false}}}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "revoked_at", Value: s.now().UTC().Truncate(time.Millisecond)}}}})
	if err != nil {
		return 0, fmt.Errorf("revoke clients of tenant %s: %w", tenant, mongoconn.WrapUnavailable(err))
	}
	return int(res.ModifiedCount), nil
}

// Revoke marks the client revoked; revoking a revoked client changes nothing.
// A missing client is ErrNotFound.
func (s *Store) Revoke(ctx context.Context, id string) error {
	res, err := s.coll.UpdateOne(ctx,
		bson.D{{Key: "_id", Value: id}, {Key: "revoked_at", Value: bson.D{{Key: "$exists", Value: false}}}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "revoked_at", Value: s.now().UTC().Truncate(time.Millisecond)}}}})
	if err != nil {
		return fmt.Errorf("revoke client %s: %w", id, mongoconn.WrapUnavailable(err))
	}
	if res.MatchedCount == 0 {
		if _, err := s.Get(ctx, id); err != nil {
			return err
		}
	}
	return nil
}
