// Package testenv finds the servers integration tests run against, in one place:
//
//  1. the addresses in AIGW_REDIS_ADDRS / AIGW_MONGO_URI when set;
//  2. otherwise, where a Docker engine answers (e.g. GitHub Actions), real redis and
//     mongo containers started with testcontainers-go, shared by the test binary;
//  3. otherwise the project's own local services (`make up`: a Redis Cluster on
//     127.0.0.1:7001-7006 and the dev MongoDB-wire server on 127.0.0.1:27018).
//
// A test whose servers cannot be reached is skipped on a developer's machine, and
// fails when CI=true or AIGW_REQUIRE_SERVICES=1: in CI nothing may silently skip.
//
// Beside it: internal/testwait (Eventually, Receive: waiting instead of deadline
// loops and sleeps), internal/testlog (the test logger) and internal/testleak
// (the goroutine-leak check each package's TestMain runs).
package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/testcontainers/testcontainers-go"
	"github.com/testcontainers/testcontainers-go/wait"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/aigw/aigw/internal/redisconn"
)

// Local service addresses, as scripts/services.sh starts them.
var (
	LocalRedisAddrs = []string{"127.0.0.1:7001", "127.0.0.1:7002", "127.0.0.1:7003", "127.0.0.1:7004", "127.0.0.1:7005", "127.0.0.1:7006"}
	LocalMongoURI   = "mongodb://127.0.0.1:27018/"
)

// Servers says where the tests' servers are and where that came from.
type Servers struct {
	RedisAddrs []string
	MongoURI   string
	Source     string // "env", "containers" or "local"
}

var (
	once    sync.Once
	servers Servers
	findErr error
)

// Required reports whether unreachable servers fail tests instead of skipping them.
func Required() bool {
	return os.Getenv("CI") == "true" || os.Getenv("AIGW_REQUIRE_SERVICES") == "1"
}

// Find resolves the servers once per test binary.
func Find() (Servers, error) {
	once.Do(func() { servers, findErr = find() })
	return servers, findErr
}

func find() (Servers, error) {
	s := Servers{Source: "env"}
	if v := os.Getenv("AIGW_REDIS_ADDRS"); v != "" {
		addrs, err := redisconn.ParseAddrs(v)
		if err != nil {
			return s, fmt.Errorf("AIGW_REDIS_ADDRS: %w", err)
		}
		s.RedisAddrs = addrs
	}
	s.MongoURI = os.Getenv("AIGW_MONGO_URI")
	if s.RedisAddrs != nil && s.MongoURI != "" {
		return s, nil
	}
	if dockerAnswers() {
		if err := startContainers(&s); err != nil {
			return s, fmt.Errorf("test containers: %w", err)
		}
		s.Source = "containers"
		return s, nil
	}
	if s.RedisAddrs == nil {
		s.RedisAddrs = LocalRedisAddrs
		s.Source = "local"
	}
	if s.MongoURI == "" {
		s.MongoURI = LocalMongoURI
		s.Source = "local"
	}
	return s, nil
}

// dockerAnswers asks testcontainers for a healthy Docker provider, bounded in time;
// with no engine (as on the project's own machines) it fails in milliseconds.
func dockerAnswers() bool {
	if os.Getenv("AIGW_NO_CONTAINERS") == "1" {
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	p, err := testcontainers.ProviderDocker.GetProvider()
	if err != nil {
		return false
	}
	defer p.Close()
	return p.Health(ctx) == nil
}

func startContainers(s *Servers) error {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if s.RedisAddrs == nil {
		c, err := testcontainers.GenericContainer(ctx, testcontainers.GenericContainerRequest{
			ContainerRequest: testcontainers.ContainerRequest{
				Image: "redis:7", ExposedPorts: []string{"6379/tcp"},
				WaitingFor: wait.ForLog("Ready to accept connections"),
			},
			Started: true,
		})
		if err != nil {
			return err
		}
		ep, err := c.PortEndpoint(ctx, "6379/tcp", "")
		if err != nil {
			return err
		}
		s.RedisAddrs = []string{ep}
	}
	if s.MongoURI == "" {
		c, err := testcontainers.GenericContainer(ctx, testcontainers.GenericContainerRequest{
			ContainerRequest: testcontainers.ContainerRequest{
				Image: "mongo:7", ExposedPorts: []string{"27017/tcp"},
				WaitingFor: wait.ForListeningPort("27017/tcp"),
			},
			Started: true,
		})
		if err != nil {
			return err
		}
		ep, err := c.PortEndpoint(ctx, "27017/tcp", "mongodb")
		if err != nil {
			return err
		}
		s.MongoURI = ep + "/"
	}
	return nil
}

// unavailable skips the test, or fails it where servers are required.
func unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if Required() {
		t.Fatalf("%s (CI=true / AIGW_REQUIRE_SERVICES=1: integration tests may not skip; start the servers with `make up`)", msg)
	}
	t.Skipf("%s; start them with `make up` (CI turns this skip into a failure)", msg)
}

// RedisAddrs returns the Redis addresses for t, skipping or failing t when no
// Redis answers.
func RedisAddrs(t testing.TB) []string {
	t.Helper()
	s, err := Find()
	if err != nil {
		unavailable(t, "no test servers: %v", err)
	}
	conn, err := net.DialTimeout("tcp", s.RedisAddrs[0], time.Second)
	if err != nil {
		unavailable(t, "redis at %s (%s) does not answer: %v", s.RedisAddrs[0], s.Source, err)
	}
	_ = conn.Close()
	return s.RedisAddrs
}

// Redis returns a client (cluster or single node) for t, closed when t ends.
func Redis(t testing.TB) redis.UniversalClient {
	t.Helper()
	addrs := RedisAddrs(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := redisconn.Open(ctx, redisconn.Options{Addrs: addrs})
	if err != nil {
		unavailable(t, "redis: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// MongoURI returns the MongoDB URI for t, skipping or failing t when nothing answers.
func MongoURI(t testing.TB) string {
	t.Helper()
	s, err := Find()
	if err != nil {
		unavailable(t, "no test servers: %v", err)
	}
	return s.MongoURI
}

// MongoDB returns a fresh database of its own for t (dropped when t ends), so tests
// run in parallel without seeing each other's data.
func MongoDB(t testing.TB) *mongo.Database {
	t.Helper()
	uri := MongoURI(t)
	client, err := mongo.Connect(options.Client().ApplyURI(uri).
		SetServerSelectionTimeout(3 * time.Second).SetConnectTimeout(2 * time.Second))
	if err != nil {
		unavailable(t, "mongodb %s: %v", uri, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := client.Ping(ctx, nil); err != nil {
		_ = client.Disconnect(context.Background())
		unavailable(t, "mongodb %s does not answer: %v", uri, err)
	}
	db := client.Database(UniqueName(t, 40))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = db.Drop(ctx)
		_ = client.Disconnect(ctx)
	})
	return db
}

// UniqueName returns a name made of the test's name and random hex, at most n
// bytes, using only [a-z0-9_] (safe for databases, pools and key tags).
func UniqueName(t testing.TB, n int) string {
	t.Helper()
	var b strings.Builder
	for _, r := range strings.ToLower(t.Name()) {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	var rnd [4]byte
	_, _ = rand.Read(rnd[:])
	suffix := "_" + hex.EncodeToString(rnd[:])
	base := b.String()
	if len(base)+len(suffix) > n {
		base = base[:n-len(suffix)]
	}
	return strings.TrimLeft(base, "_") + suffix
}
