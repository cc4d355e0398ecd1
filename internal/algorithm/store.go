package algorithm

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/aigw/aigw/internal/mongoconn"
)

// ErrNotFound is an unknown algorithm or version.
var ErrNotFound = errors.New("algorithm not found")

// Store keeps definitions in MongoDB, one document per name@version.
type Store struct {
	c   *mongo.Collection
	now func() time.Time
}

type record struct {
	ID         string `bson:"_id"`
	Definition `bson:",inline"`
}

// NewStore returns a Store on db's "algorithms" collection.
func NewStore(db *mongo.Database) *Store {
	return &Store{c: db.Collection("algorithms"), now: time.Now}
}

// Put validates d and registers it, replacing an earlier definition of the
// same name@version (its created_at is kept). It returns the stored definition
// and whether it was new.
func (s *Store) Put(ctx context.Context, d Definition) (*Definition, bool, error) {
	if err := d.Validate(); err != nil {
		return nil, false, err
	}
	now := s.now().UTC().Truncate(time.Millisecond)
	d.UpdatedAt = now
	prev, err := s.Get(ctx, d.Name, d.Version)
	switch {
	case err == nil:
		d.CreatedAt = prev.CreatedAt
	case errors.Is(err, ErrNotFound):
		d.CreatedAt = now
	default:
		return nil, false, err
	}
	_, err = s.c.ReplaceOne(ctx, bson.D{{Key: "_id", Value: d.ID()}}, record{ID: d.ID(), Definition: d},
		options.Replace().SetUpsert(true))
	if err != nil {
		return nil, false, fmt.Errorf("put algorithm %s: %w", d.ID(), mongoconn.WrapUnavailable(err))
	}
	return &d, prev == nil, nil
}

// Get returns name at version, or its highest version when version is "".
func (s *Store) Get(ctx context.Context, name, version string) (*Definition, error) {
	if version != "" {
		var r record
		err := s.c.FindOne(ctx, bson.D{{Key: "_id", Value: name + "@" + version}}).Decode(&r)
		if errors.Is(err, mongo.ErrNoDocuments) {
			return nil, fmt.Errorf("%w: %s version %s", ErrNotFound, name, version)
		}
		if err != nil {
			return nil, fmt.Errorf("get algorithm %s: %w", name, mongoconn.WrapUnavailable(err))
		}
		return &r.Definition, nil
	}
	all, err := s.find(ctx, bson.D{{Key: "name", Value: name}})
	if err != nil {
		return nil, err
	}
	if len(all) == 0 {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, name)
	}
	return &all[len(all)-1], nil
}

// Versions returns every version of name, lowest first.
func (s *Store) Versions(ctx context.Context, name string) ([]Definition, error) {
	return s.find(ctx, bson.D{{Key: "name", Value: name}})
}

// List returns every definition, by name then version (lowest first).
func (s *Store) List(ctx context.Context) ([]Definition, error) {
	return s.find(ctx, bson.D{})
}

func (s *Store) find(ctx context.Context, filter bson.D) ([]Definition, error) {
	cur, err := s.c.Find(ctx, filter)
	if err != nil {
		return nil, fmt.Errorf("list algorithms: %w", mongoconn.WrapUnavailable(err))
	}
	var recs []record
	if err := cur.All(ctx, &recs); err != nil {
		return nil, fmt.Errorf("list algorithms: %w", mongoconn.WrapUnavailable(err))
	}
	out := make([]Definition, len(recs))
	for i := range recs {
		out[i] = recs[i].Definition
	}
	slices.SortFunc(out, func(a, b Definition) int {
		if c := strings.Compare(a.Name, b.Name); c != 0 {
			return c
		}
		return CompareVersions(a.Version, b.Version)
	})
	return out, nil
}
