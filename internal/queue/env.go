package queue

import "github.com/aigw/aigw/internal/envconf"

// EnvShards names the variable holding the shard count of every pool.
const EnvShards = "AIGW_QUEUE_SHARDS"

// DefaultShards is the shard count when AIGW_QUEUE_SHARDS is unset.
const DefaultShards = 8

// MaxShards bounds AIGW_QUEUE_SHARDS: a consumer scans every shard of its pool.
const MaxShards = 1024

// ConfigFromEnv is the queue configuration every producer and consumer reads
// (router, orchestrator, worker): AIGW_QUEUE_SHARDS (default 8), which must be
// the same in every process, since a job's shard is hash(job id) mod shards.
// Consumer-only settings (Lease) are the consumer's to add.
func ConfigFromEnv(r *envconf.Reader) Config {
	return Config{Shards: r.Int(EnvShards, DefaultShards, 1, MaxShards)}
}
