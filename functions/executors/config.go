// Package executors is the executor API: machines outside the private network
// (a NuNet ensemble, a desktop, any server) serve a pool without Redis or
// MongoDB credentials. An admin creates a pool-scoped executor credential
// (POST /admin/executors); the executor registers, long-polls to claim jobs
// of its pool, heartbeats to keep their leases, sends progress and log lines,
// uploads artifacts and finishes each job with its output or failure. The
// function does, on the executor's behalf, what a worker agent does with the
// queue and the job records: it takes entries with the executor as the queue
// consumer, moves every record through internal/lifecycle (one
// compare-and-set per transition) and hands back the job of an executor whose
// lease ran out (attempt + 1, code lost), so the job runs elsewhere and ends
// once. An executor sees only the input of a job it holds.
//
// Holds live in this process (one replica: stack.yml scales it to one); if
// the function restarts, the queue lease of every held entry runs out and a
// worker or executor takes the job over as it does for a dead worker.
package executors

import (
	"time"

	"github.com/aigw/aigw/internal/envconf"
	"github.com/aigw/aigw/internal/fnserve"
	"github.com/aigw/aigw/internal/objstore"
	"github.com/aigw/aigw/internal/queue"
	"github.com/aigw/aigw/internal/redisconn"
)

// Config is the executors function's configuration.
type Config struct {
	Serve fnserve.Config

	// Lease is how long an executor keeps a job without a heartbeat
	// (AIGW_EXECUTOR_LEASE, default 15s); past it the job is handed back.
	Lease time.Duration
	// Poll is the longest a claim waits for a job (AIGW_EXECUTOR_POLL, default 25s).
	Poll time.Duration
	// OutputLimit bounds a finished job's output (AIGW_EXECUTOR_OUTPUT_LIMIT,
	// default 1 MiB); ArtifactLimit one artifact (AIGW_EXECUTOR_ARTIFACT_LIMIT,
	// default 100 MiB).
	OutputLimit   int64
	ArtifactLimit int64
	// RetryBase and RetryMax space automatic retries (AIGW_RETRY_BASE 1s,
	// AIGW_RETRY_MAX 5m), as for workers.
	RetryBase, RetryMax time.Duration

	// JWKSURL, Issuer, Audience verify operator tokens on the admin
	// endpoints: AIGW_JWKS_URL (default: the auth function's, through the
	// local gateway), AIGW_ISSUER, AIGW_AUDIENCE.
	JWKSURL, Issuer, Audience string

	MongoDB string // AIGW_MONGO_DB
	Queue   queue.Config
	S3      objstore.Config

	// From secrets, else the environment, as for the other functions.
	RedisAddrs    []string
	RedisPassword string
	MongoURI      string
	AdminToken    string
}

// ReadConfig reads Config through getenv; bad values are errors, joined.
func ReadConfig(getenv func(string) string) (Config, error) {
	r := envconf.FromGetenv(getenv)
	c := Read(r)
	return c, r.Err()
}

// Read reads Config through r (errors stay in r).
func Read(r *envconf.Reader) Config {
	c := Config{Serve: fnserve.Read(r)}
	c.MongoURI = r.MongoURI(true)
	c.MongoDB = r.MongoDB()
	c.JWKSURL, c.Issuer, c.Audience = r.Verifier()
	c.RedisAddrs = r.RedisAddrs(true, redisconn.ParseAddrs)
	c.RedisPassword = r.RedisPassword()
	c.AdminToken = r.RequiredSecret(envconf.SecretAdminToken, envconf.EnvAdminToken)
	c.Queue = queue.ConfigFromEnv(r)
	c.S3 = objstore.ReadConfig(r)
	c.Lease = r.Duration("AIGW_EXECUTOR_LEASE", 15*time.Second, time.Second, 0)
	c.Poll = r.Duration("AIGW_EXECUTOR_POLL", 25*time.Second, 0, 5*time.Minute)
	c.OutputLimit = r.Int64("AIGW_EXECUTOR_OUTPUT_LIMIT", 1<<20, 1, 1<<30)
	c.ArtifactLimit = r.Int64("AIGW_EXECUTOR_ARTIFACT_LIMIT", 100<<20, 1, 1<<40)
	c.RetryBase = r.Duration("AIGW_RETRY_BASE", time.Second, envconf.Positive, 0)
	c.RetryMax = r.Duration("AIGW_RETRY_MAX", 5*time.Minute, envconf.Positive, 0)
	return c
}
