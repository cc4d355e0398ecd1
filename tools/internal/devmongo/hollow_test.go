package devmongo

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// ferretIndexSQL is the SQL of FerretDB's own SQLite index for MongoDB index
// name of coll.
func ferretIndexSQL(t *testing.T, s *Server, db, coll, name string) string {
	t.Helper()
	var def string
	if err := openRO(t, s, db).QueryRow(`SELECT sql FROM sqlite_master WHERE type = 'index' AND name =
		(SELECT table_name FROM _ferretdb_collections WHERE name = ?) || '_' || ?`, coll, name).Scan(&def); err != nil {
		t.Fatalf("index %s: %v", name, err)
	}
	return def
}

// TestFerretDBIndexesHollowed: FerretDB's non-unique SQLite indexes are
// emptied (writes skip them) while queries on their fields still answer
// through the mirrors, the indexes are still listed and can be dropped, and
// unique indexes keep enforcing uniqueness.
func TestFerretDBIndexesHollowed(t *testing.T) {
	s := startServer(t)
	ctx := t.Context()
	coll := connect(t, s.URI(), nil).Database("hollow").Collection("c")
	if _, err := coll.InsertOne(ctx, bson.D{{Key: "_id", Value: "a"}, {Key: "state", Value: "queued"}, {Key: "u", Value: 1}}); err != nil {
		t.Fatal(err)
	}
	if _, err := coll.Indexes().CreateMany(ctx, []mongo.IndexModel{
		{Keys: bson.D{{Key: "state", Value: 1}, {Key: "_id", Value: 1}}, Options: options.Index().SetName("state_id")},
		{Keys: bson.D{{Key: "u", Value: 1}}, Options: options.Index().SetName("u_unique").SetUnique(true)},
	}); err != nil {
		t.Fatal(err)
	}
	// The next command on the collection brings its indexes in step.
	for i, id := range []string{"b", "c"} {
		if _, err := coll.InsertOne(ctx, bson.D{{Key: "_id", Value: id}, {Key: "state", Value: "queued"}, {Key: "u", Value: i + 2}}); err != nil {
			t.Fatal(err)
		}
	}
	if def := ferretIndexSQL(t, s, "hollow", "c", "state_id"); !strings.HasSuffix(def, hollowSuffix) {
		t.Fatalf("state_id is not hollow: %s", def)
	}
	if def := ferretIndexSQL(t, s, "hollow", "c", "u_unique"); strings.Contains(def, hollowSuffix) || !strings.Contains(def, "UNIQUE") {
		t.Fatalf("u_unique changed: %s", def)
	}
	var n int
	if err := openRO(t, s, "hollow").QueryRow(`SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name =
		(SELECT table_name FROM _ferretdb_collections WHERE name = 'c') || '_state_id'`).Scan(&n); err != nil || n != 1 {
		t.Fatalf("state_id: %d indexes, %v", n, err)
	}

	// Unique still enforced.
	if _, err := coll.InsertOne(ctx, bson.D{{Key: "_id", Value: "d"}, {Key: "u", Value: 1}}); !mongo.IsDuplicateKeyError(err) {
		t.Fatalf("duplicate u: %v, want a duplicate key error", err)
	}
	if _, err := coll.InsertOne(ctx, bson.D{{Key: "_id", Value: "a"}}); !mongo.IsDuplicateKeyError(err) {
		t.Fatalf("duplicate _id: %v, want a duplicate key error", err)
	}
	// Writes and queries on the hollow index's fields.
	if err := coll.FindOneAndUpdate(ctx, bson.D{{Key: "_id", Value: "b"}, {Key: "state", Value: "queued"}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "state", Value: "running"}}}}).Err(); err != nil {
		t.Fatal(err)
	}
	cur, err := coll.Find(ctx, bson.D{{Key: "state", Value: "queued"}}, options.Find().SetSort(bson.D{{Key: "_id", Value: 1}}))
	if err != nil {
		t.Fatal(err)
	}
	var docs []struct {
		ID string `bson:"_id"`
	}
	if err := cur.All(ctx, &docs); err != nil {
		t.Fatal(err)
	}
	if len(docs) != 2 || docs[0].ID != "a" || docs[1].ID != "c" {
		t.Fatalf("queued: %+v, want a and c", docs)
	}
	// Listed, and dropped through FerretDB.
	specs, err := coll.Indexes().ListSpecifications(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, sp := range specs {
		names = append(names, sp.Name)
	}
	if strings.Join(names, ",") != "_id_,state_id,u_unique" {
		t.Fatalf("indexes %v", names)
	}
	if err := coll.Indexes().DropOne(ctx, "state_id"); err != nil {
		t.Fatalf("drop the hollow index: %v", err)
	}
	if err := openRO(t, s, "hollow").QueryRow(`SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name =
		(SELECT table_name FROM _ferretdb_collections WHERE name = 'c') || '_state_id'`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("state_id after the drop: %d indexes, %v", n, err)
	}
	// Created again: hollow again.
	if _, err := coll.Indexes().CreateOne(ctx, mongo.IndexModel{Keys: bson.D{{Key: "state", Value: 1}, {Key: "_id", Value: 1}},
		Options: options.Index().SetName("state_id")}); err != nil {
		t.Fatal(err)
	}
	if err := coll.FindOne(ctx, bson.D{{Key: "_id", Value: "a"}}).Err(); err != nil {
		t.Fatal(err)
	}
	if def := ferretIndexSQL(t, s, "hollow", "c", "state_id"); !strings.HasSuffix(def, hollowSuffix) {
		t.Fatalf("state_id created again is not hollow: %s", def)
	}
}

// TestHollowIndexesSurviveARestart: a server started again on the same files
// finds FerretDB's indexes hollow, answers queries on their fields and drops
// them.
func TestHollowIndexesSurviveARestart(t *testing.T) {
	dir := t.TempDir()
	start := func() *Server {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		s, err := Start(ctx, Config{Addr: "127.0.0.1:0", DataDir: dir,
			Logger: slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	ctx := t.Context()
	s := start()
	c1, err := mongo.Connect(options.Client().ApplyURI(s.URI()).SetDirect(true))
	if err != nil {
		t.Fatal(err)
	}
	coll := c1.Database("hollow").Collection("c")
	if _, err := coll.Indexes().CreateOne(ctx, mongo.IndexModel{Keys: bson.D{{Key: "state", Value: 1}}, Options: options.Index().SetName("state_1")}); err != nil {
		t.Fatal(err)
	}
	if _, err := coll.InsertMany(ctx, []any{bson.D{{Key: "_id", Value: "a"}, {Key: "state", Value: "queued"}},
		bson.D{{Key: "_id", Value: "b"}, {Key: "state", Value: "running"}}}); err != nil {
		t.Fatal(err)
	}
	_ = c1.Disconnect(ctx)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = start()
	t.Cleanup(func() { _ = s.Close() })
	coll = connect(t, s.URI(), nil).Database("hollow").Collection("c")
	n, err := coll.CountDocuments(ctx, bson.D{{Key: "state", Value: "queued"}})
	if err != nil || n != 1 {
		t.Fatalf("queued after the restart: %d, %v", n, err)
	}
	if def := ferretIndexSQL(t, s, "hollow", "c", "state_1"); !strings.HasSuffix(def, hollowSuffix) {
		t.Fatalf("state_1 after the restart: %s", def)
	}
	if err := coll.Indexes().DropOne(ctx, "state_1"); err != nil {
		t.Fatalf("drop after the restart: %v", err)
	}
}
