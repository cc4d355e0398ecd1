package benchdb

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/aigw/aigw/internal/testenv"
	"github.com/aigw/aigw/internal/testleak"
)

func TestMain(m *testing.M) { testleak.Main(m) }

func TestStarted(t *testing.T) {
	at := time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)
	n := at.UnixNano()
	for name, want := range map[string]bool{
		fmt.Sprintf("aigw_bench_%d", n):        true,
		fmt.Sprintf("aigw_cyclebench_%d", n):   true,
		fmt.Sprintf("routerbench%d", n):        true,
		fmt.Sprintf("workerbench%d", n):        true,
		"bench_gw_" + strconv.FormatInt(n, 36): true,
		"aigw":                                 false,
		"aigw_bench_":                          false,
		"aigw_bench_x1":                        false,
		"testjobs_1234abcd":                    false,
	} {
		got, ok := Started(name)
		if ok != want || (ok && !got.Equal(at)) {
			t.Errorf("Started(%q) = %v, %v; want %v", name, got, ok, want)
		}
	}
}

// TestDropStale: of two bench databases, the one whose run started long ago
// is dropped, the one of a run going on now is kept, and other databases are
// never touched.
func TestDropStale(t *testing.T) {
	t.Parallel()
	own := testenv.MongoDB(t) // not a bench's name: must survive
	ctx := t.Context()
	client, err := mongo.Connect(options.Client().ApplyURI(testenv.MongoURI(t)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Disconnect(context.Background()) })
	now := time.Now()
	old := fmt.Sprintf("aigw_bench_%d", now.Add(-48*time.Hour).UnixNano())
	live := fmt.Sprintf("aigw_bench_%d", now.UnixNano())
	for _, db := range []*mongo.Database{client.Database(old), client.Database(live), own} {
		t.Cleanup(func() { _ = db.Drop(context.Background()) })
		if _, err := db.Collection("c").InsertOne(ctx, bson.D{{Key: "x", Value: 1}}); err != nil {
			t.Fatal(err)
		}
	}
	dropped, err := DropStale(ctx, client, 24*time.Hour, now)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(dropped, old) || slices.Contains(dropped, live) || slices.Contains(dropped, own.Name()) {
		t.Errorf("dropped %v; want %s, not %s or %s", dropped, old, live, own.Name())
	}
	names, err := client.ListDatabaseNames(ctx, bson.D{})
	if err != nil {
		t.Fatal(err)
	}
	if slices.Contains(names, old) || !slices.Contains(names, live) || !slices.Contains(names, own.Name()) {
		t.Errorf("databases after the sweep: %v", names)
	}
}
