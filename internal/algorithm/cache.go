package algorithm

import (
	"context"
	"sync"
	"time"
)

// Source reads definitions: a Store, or a Cache in front of one.
type Source interface {
	Get(ctx context.Context, name, version string) (*Definition, error)
}

// Lister lists every definition: a Store, or a Cache in front of one.
type Lister interface {
	List(ctx context.Context) ([]Definition, error)
}

// Cache keeps definitions read from a Store for a short time, so a worker
// reads an algorithm's definition from MongoDB once per TTL instead of once per
// job. A re-registered definition reaches the cache's users within the TTL;
// lookups that fail (unknown algorithm, server down) are not kept.
type Cache struct {
	src Source
	ttl time.Duration
	now func() time.Time

	mu sync.Mutex
	m  map[string]cached
}

type cached struct {
	def     *Definition
	expires time.Time
}

// NewCache returns a cache of src; ttl ≤ 0 means 2 s.
func NewCache(src Source, ttl time.Duration) *Cache {
	if ttl <= 0 {
		ttl = 2 * time.Second
	}
	return &Cache{src: src, ttl: ttl, now: time.Now, m: map[string]cached{}}
}

// Get returns name at version ("" = the highest), from the cache while fresh.
func (c *Cache) Get(ctx context.Context, name, version string) (*Definition, error) {
	key := name + "@" + version
	now := c.now()
	c.mu.Lock()
	e, ok := c.m[key]
	c.mu.Unlock()
	if ok && now.Before(e.expires) {
		return e.def, nil
	}
	def, err := c.src.Get(ctx, name, version)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.m[key] = cached{def: def, expires: now.Add(c.ttl)}
	c.mu.Unlock()
	return def, nil
}

// List lists every definition from the source, uncached; ErrNotFound when
// the source cannot list.
func (c *Cache) List(ctx context.Context) ([]Definition, error) {
	l, ok := c.src.(Lister)
	if !ok {
		return nil, ErrNotFound
	}
	return l.List(ctx)
}
