package devmongo

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// indexNames lists coll's indexes by name, sorted.
func indexNames(t *testing.T, ctx context.Context, coll *mongo.Collection) []string {
	t.Helper()
	specs, err := coll.Indexes().ListSpecifications(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range specs {
		names = append(names, s.Name)
	}
	slices.Sort(names)
	return names
}

func index(name string, unique bool, keys ...string) mongo.IndexModel {
	var d bson.D
	for _, k := range keys {
		d = append(d, bson.E{Key: k, Value: 1})
	}
	o := options.Index().SetName(name)
	if unique {
		o.SetUnique(true)
	}
	return mongo.IndexModel{Keys: d, Options: o}
}

// TestCreateIndexesOfExistingIndexes: as on MongoDB, asking again for indexes
// that exist with the same spec does nothing and succeeds, also when the
// request mixes existing and new ones (FerretDB alone closes the connection on
// two existing indexes in one request, or creates the wrong ones).
func TestCreateIndexesOfExistingIndexes(t *testing.T) {
	s := startServer(t)
	c := connect(t, s.URI(), nil)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	coll := c.Database("idx").Collection("jobs")
	a, b, cc := index("a_unique", true, "a"), index("b_id", false, "b", "_id"), index("c", false, "c")
	if _, err := coll.Indexes().CreateMany(ctx, []mongo.IndexModel{a, b, cc}); err != nil {
		t.Fatal(err)
	}
	want := []string{"_id_", "a_unique", "b_id", "c"}
	for i := 0; i < 2; i++ {
		if _, err := coll.Indexes().CreateMany(ctx, []mongo.IndexModel{a, b, cc}); err != nil {
			t.Fatalf("creating existing indexes again (%d): %v", i+1, err)
		}
		if got := indexNames(t, ctx, coll); !slices.Equal(got, want) {
			t.Fatalf("indexes %v, want %v", got, want)
		}
	}
	// Existing first and last, new in between; then two existing before a new one.
	if _, err := coll.Indexes().CreateMany(ctx, []mongo.IndexModel{a, index("d", false, "d"), cc}); err != nil {
		t.Fatal(err)
	}
	if _, err := coll.Indexes().CreateMany(ctx, []mongo.IndexModel{a, b, index("e", false, "e")}); err != nil {
		t.Fatal(err)
	}
	want = []string{"_id_", "a_unique", "b_id", "c", "d", "e"}
	if got := indexNames(t, ctx, coll); !slices.Equal(got, want) {
		t.Fatalf("indexes %v, want %v", got, want)
	}
	// The _id index asked for by its own name and key.
	if _, err := coll.Indexes().CreateMany(ctx, []mongo.IndexModel{index("_id_", false, "_id"), a}); err != nil {
		t.Fatalf("_id_ and an existing index: %v", err)
	}

	// The same name with other options or another key is refused, as on MongoDB.
	var ce mongo.CommandError
	_, err := coll.Indexes().CreateOne(ctx, index("a_unique", false, "a"))
	if !errors.As(err, &ce) || ce.Code != 85 {
		t.Fatalf("same name and key, other options: %v, want IndexOptionsConflict (85)", err)
	}
	_, err = coll.Indexes().CreateOne(ctx, index("c", false, "other"))
	if !errors.As(err, &ce) || ce.Code != 86 {
		t.Fatalf("same name, another key: %v, want IndexKeySpecsConflict (86)", err)
	}
	if err := c.Ping(ctx, nil); err != nil {
		t.Fatal(err)
	}
}

// TestCreateIndexesRace: processes opening a store on one database at once
// each create its indexes; every one of them succeeds.
func TestCreateIndexesRace(t *testing.T) {
	s := startServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, 6)
	for i := 0; i < 6; i++ {
		c := connect(t, s.URI(), nil) // a client each, as separate processes have
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Models of their own: the driver writes into their options.
			models := []mongo.IndexModel{index("a_unique", true, "a"), index("b_id", false, "b", "_id"), index("c", false, "c")}
			_, err := c.Database("idx").Collection("jobs").Indexes().CreateMany(ctx, models)
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("createIndexes: %v", err)
		}
	}
}
