package readiness_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/aigw/aigw/internal/readiness"
	"github.com/aigw/aigw/internal/testenv"
)

// TestStores: ready with the test servers up; with neither answering, an
// error naming both.
func TestStores(t *testing.T) {
	ctx := context.Background()
	if err := readiness.Stores(ctx, 5*time.Second, testenv.MongoDB(t), testenv.Redis(t)); err != nil {
		t.Fatalf("servers up: %v", err)
	}
	mc, err := mongo.Connect(options.Client().ApplyURI("mongodb://127.0.0.1:1/").SetServerSelectionTimeout(200 * time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = mc.Disconnect(ctx) })
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	t.Cleanup(func() { _ = rdb.Close() })
	err = readiness.Stores(ctx, time.Second, mc.Database("x"), rdb)
	if err == nil || !strings.Contains(err.Error(), "mongodb: ") || !strings.Contains(err.Error(), "redis: ") {
		t.Fatalf("servers down: %v, want both named", err)
	}
}
