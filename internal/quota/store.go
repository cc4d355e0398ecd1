package quota

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/aigw/aigw/internal/mongoconn"
	"github.com/aigw/aigw/internal/mongoindex"
)

// Store keeps tenants' quotas in a MongoDB collection ("quotas": one
// document per tenant, _id the tenant).
type Store struct {
	c   *mongo.Collection
	now func() time.Time
}

// NewStore returns a Store on db and creates its index (idempotent).
func NewStore(ctx context.Context, db *mongo.Database) (*Store, error) {
	s := &Store{c: db.Collection("quotas"), now: time.Now}
	err := mongoindex.Ensure(ctx, s.c, mongo.IndexModel{Keys: bson.D{{Key: "pools.pool", Value: 1}}, Options: options.Index().SetName("pools_pool")})
	if err != nil {
		return nil, fmt.Errorf("create quota indexes: %w", mongoconn.WrapUnavailable(err))
	}
	return s, nil
}

// Put replaces tenant t.Tenant's quotas with t (validated first; no pools:
// no quotas) and returns what is stored.
func (s *Store) Put(ctx context.Context, t Tenant) (*Tenant, error) {
	if err := t.Validate(); err != nil {
		return nil, err
	}
	if t.Pools == nil {
		t.Pools = []Quota{}
	}
	t.UpdatedAt = s.now().UTC().Truncate(time.Millisecond)
	set := bson.D{{Key: "pools", Value: t.Pools}, {Key: "updated_at", Value: t.UpdatedAt}}
	unset := bson.D{{Key: "weight", Value: ""}}
	if t.Weight != nil {
		set, unset = append(set, bson.E{Key: "weight", Value: *t.Weight}), nil
	}
	upd := bson.D{{Key: "$set", Value: set}}
	if unset != nil {
		upd = append(upd, bson.E{Key: "$unset", Value: unset})
	}
	// An update, not a replacement: a deletion's time (DeletedAt) stays.
	var stored Tenant
	err := s.c.FindOneAndUpdate(ctx, bson.D{{Key: "_id", Value: t.Tenant}}, upd,
		options.FindOneAndUpdate().SetUpsert(true).SetReturnDocument(options.After)).Decode(&stored)
	if err != nil {
		return nil, fmt.Errorf("store quotas of %s: %w", t.Tenant, mongoconn.WrapUnavailable(err))
	}
	return &stored, nil
}

// Delete removes tenant's quotas and weights and records when (DeletedAt),
// which it returns.
func (s *Store) Delete(ctx context.Context, tenant string) (time.Time, error) {
	now := s.now().UTC().Truncate(time.Millisecond)
	_, err := s.c.UpdateOne(ctx, bson.D{{Key: "_id", Value: tenant}}, bson.D{
		{Key: "$set", Value: bson.D{{Key: "pools", Value: bson.A{}}, {Key: "updated_at", Value: now}, {Key: "deleted_at", Value: now}}},
		{Key: "$unset", Value: bson.D{{Key: "weight", Value: ""}}},
	}, options.UpdateOne().SetUpsert(true))
	if err != nil {
		return time.Time{}, fmt.Errorf("delete quotas of %s: %w", tenant, mongoconn.WrapUnavailable(err))
	}
	return now, nil
}

// Get returns tenant's quotas (none set: no pools).
func (s *Store) Get(ctx context.Context, tenant string) (*Tenant, error) {
	var t Tenant
	err := s.c.FindOne(ctx, bson.D{{Key: "_id", Value: tenant}}).Decode(&t)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return &Tenant{Tenant: tenant, Pools: []Quota{}}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read quotas of %s: %w", tenant, mongoconn.WrapUnavailable(err))
	}
	return &t, nil
}

// MaxRunning returns the MaxRunning quotas of pool by tenant (tenants
// without one left out).
func (s *Store) MaxRunning(ctx context.Context, pool string) (map[string]int, error) {
	cur, err := s.c.Find(ctx, bson.D{{Key: "pools.pool", Value: pool}})
	if err != nil {
		return nil, fmt.Errorf("read quotas of pool %s: %w", pool, mongoconn.WrapUnavailable(err))
	}
	var ts []Tenant
	if err := cur.All(ctx, &ts); err != nil {
		return nil, fmt.Errorf("read quotas of pool %s: %w", pool, mongoconn.WrapUnavailable(err))
	}
	out := map[string]int{}
	for _, t := range ts {
		if q, ok := t.Pool(pool); ok && q.MaxRunning > 0 {
			out[t.Tenant] = q.MaxRunning
		}
	}
	return out, nil
}

// Cache answers reads of a Store from memory for TTL: a quota set through
// the API takes effect within TTL everywhere.
type Cache struct {
	s   *Store
	ttl time.Duration

	mu      sync.Mutex
	tenants map[string]cached[*Tenant]
	pools   map[string]cached[map[string]int]
}

type cached[T any] struct {
	v  T
	at time.Time
}

// NewCache returns a Cache over s (ttl ≤ 0: 5 s).
func NewCache(s *Store, ttl time.Duration) *Cache {
	if ttl <= 0 {
		ttl = 5 * time.Second
	}
	return &Cache{s: s, ttl: ttl, tenants: map[string]cached[*Tenant]{}, pools: map[string]cached[map[string]int]{}}
}

// Get is Store.Get, cached.
func (c *Cache) Get(ctx context.Context, tenant string) (*Tenant, error) {
	c.mu.Lock()
	e, ok := c.tenants[tenant]
	c.mu.Unlock()
	if ok && time.Since(e.at) < c.ttl {
		return e.v, nil
	}
	t, err := c.s.Get(ctx, tenant)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.tenants[tenant] = cached[*Tenant]{t, time.Now()}
	c.mu.Unlock()
	return t, nil
}

// DeletedAt is when tenant was last deleted (nil: never), cached.
func (c *Cache) DeletedAt(ctx context.Context, tenant string) (*time.Time, error) {
	t, err := c.Get(ctx, tenant)
	if err != nil {
		return nil, err
	}
	return t.DeletedAt, nil
}

// TTL is how long c answers from memory: a change reaches every Cache
// within it.
func (c *Cache) TTL() time.Duration { return c.ttl }

// Forget drops what c holds of tenant: its next read goes to the store.
func (c *Cache) Forget(tenant string) {
	c.mu.Lock()
	delete(c.tenants, tenant)
	c.mu.Unlock()
}

// MaxRunning is Store.MaxRunning, cached.
func (c *Cache) MaxRunning(ctx context.Context, pool string) (map[string]int, error) {
	c.mu.Lock()
	e, ok := c.pools[pool]
	c.mu.Unlock()
	if ok && time.Since(e.at) < c.ttl {
		return e.v, nil
	}
	m, err := c.s.MaxRunning(ctx, pool)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.pools[pool] = cached[map[string]int]{m, time.Now()}
	c.mu.Unlock()
	return m, nil
}
