// Package rediskeys names every Redis key of aigw, in one place (as asynq's
// internal/base does). No other package spells a key: each calls the function
// of its key family here, and a test fails on any "aigw:…" string literal in a
// non-test Go file elsewhere in the workspace.
//
// Every key starts with "aigw:". A key's hash tag (the part in braces) decides
// its Redis Cluster slot; the rule is that all keys one Lua script or one MULTI
// touches carry the same tag:
//
//	tag                 families                                   why together
//	{<pool>#<shard>}    QueueShard                                 the queue's take/enqueue/dead-letter scripts
//	{<pool>}            Workers, GangFree, GangReservations,       the gang scripts (reserve, publish, start, renew)
//	                    GangOutput
//	{job:<id>}          JobEvents, JobCancel                       events and gap read in one MULTI
//	{rl:<key>}          RateLimit                                  one bucket per script
//	{quota:<pool>/<t>}  QuotaRunning                               one set per script
//	{fair:<pool>}       Fair                                       the fair-share scripts (admit, pick, done)
//	{<tag>}             AsyncQueue                                 the gateway's async stream and its bookkeeping
//	{<name>}            TickLease                                  one lease per orchestrator cycle
//	(none)              Pools                                      a single set, read alone
//	(a channel)         QuotaChanges                               Pub/Sub, broadcast to every node
//
// Key strings never change: they are data on running clusters (a renamed key
// is an orphaned queue). The package's table test pins each one byte for byte.
package rediskeys

import "strconv"

// prefix starts every key of the system.
const prefix = "aigw:"

// tagged is "aigw:{tag}:".
func tagged(tag string) string { return prefix + "{" + tag + "}:" }

// Queue keys of one pool shard, all on the tag {<pool>#<shard>}. Owner:
// internal/queue (producers in internal/submit and the orchestrator, consumers
// in the worker). None has a TTL: entries leave when acknowledged, taken,
// cancelled or dead-lettered; the streams are trimmed by the scripts.
type QueueKeys struct {
	// Streams are the priority streams high, normal, low (Redis stream each,
	// one consumer group), XADD to enqueue, XREADGROUP/the take script to take.
	Streams [3]string
	// Delayed is the zset of jobs waiting for their not-before time (score: due
	// unix ms).
	Delayed string
	// IDs is the membership hash: job id → priority index, or "delayed"; it makes
	// an enqueue idempotent. Two fields no job id can be (ids have no '|') belong
	// to the shard: "|h", its copy of the pool's high-waiting hint (a counter,
	// incremented by producers of high jobs on every shard and read by the take
	// script), and "|d", the earliest due time in Delayed (unix ms; unset when
	// it is empty).
	IDs string
	// Dead is the dead-letter stream (capped by MAXLEN).
	Dead string
	// HighWaiting was the pool's high-waiting hint (a string counter per shard)
	// until 2026-12, when it became the field "|h" of IDs; no longer written,
	// it is named so that a pool's purge removes an old copy.
	HighWaiting string
	// Wake is the shard's wake-up stream (Redis stream, one consumer group,
	// capped by MAXLEN): a producer that enqueued to another shard adds an entry
	// naming that shard here, the home shard of an idle consumer of the pool,
	// whose blocking read includes this stream. Entries are acknowledged and
	// deleted by their reader's next take.
	Wake string
	// Idle is the home shards of the pool's idle consumers, one copy per shard
	// (zset, member: the home shard's number, score: server time in unix ms
	// when the entry expires), written by a consumer's look at every shard
	// before it blocks again, read by producers to pick a consumer to wake.
	Idle string
}

// QueueShard returns the keys of shard shard of pool, e.g.
// aigw:{gpu-a100#3}:q:high.
func QueueShard(pool string, shard int) QueueKeys {
	p := tagged(pool + "#" + strconv.Itoa(shard))
	return QueueKeys{
		Streams:     [3]string{p + "q:high", p + "q:normal", p + "q:low"},
		Delayed:     p + "delayed",
		IDs:         p + "ids",
		Dead:        p + "dead",
		HighWaiting: p + "high-waiting",
		Wake:        p + "wake",
		Idle:        p + "idle",
	}
}

// Pools is the set of pool names (Redis set, no TTL, no hash tag: read and
// written on its own). Owner: internal/registry.
const Pools = prefix + "pools"

// QuotaChanges is the Pub/Sub channel on which a router announces a tenant
// whose quotas changed or that was deleted (message: the tenant), so that
// every router's quota cache forgets it at once. A channel, not a key:
// Redis Cluster broadcasts it to every node. Owner: internal/quota.
const QuotaChanges = prefix + "quota-changes"

// Workers is the hash of pool's workers: node → worker JSON with its expiry
// (no key TTL: expired entries are pruned when read). Tag {<pool>}, shared with
// the gang keys. Owner: internal/registry.
func Workers(pool string) string { return tagged(pool) + "workers" }

// GangFree is the hash of pool's free worker slots: node → "<free>|<expiry unix
// ms>" (no key TTL; entries expire by their value). Tag {<pool>}. Owner:
// worker/internal/gang.
func GangFree(pool string) string { return tagged(pool) + "gang:free" }

// GangReservations is the hash of pool's gang reservations: job id →
// reservation JSON (no key TTL; a reservation's leader renews it, the next
// reserve deletes one that expired). Tag {<pool>}. Owner: worker/internal/gang.
func GangReservations(pool string) string { return tagged(pool) + "gang:res" }

// GangOutput is the hash of a gang job's member results: rank → result JSON,
// with a 24 h TTL. Tag {<pool>}. Owner: worker/internal/gang.
func GangOutput(pool, jobID string) string { return tagged(pool) + "gang:out:" + jobID }

// JobEvents is the event stream of job id (Redis stream, capped; TTL 24 h while
// the job is active, 1 h after its terminal event: internal/events' Config).
// Tag {job:<id>}, shared with JobCancel. Owner: internal/events.
func JobEvents(jobID string) string { return tagged("job:"+jobID) + "events" }

// JobCancel is the cancel request of job id (string: request time in unix ms,
// TTL 24 h by default). Tag {job:<id>}. Owner: internal/events.
func JobCancel(jobID string) string { return tagged("job:"+jobID) + "cancel" }

// RateLimit is the token bucket of key, e.g. a tenant (hash {tokens, ts} that
// expires once it would be full again). Its own tag {rl:<key>}, so the buckets
// of different tenants spread over the cluster. Owner: internal/ratelimit.
func RateLimit(key string) string { return prefix + "{rl:" + key + "}" }

// QuotaRunning is the sorted set of tenant's jobs running in pool that
// count against its MaxRunning quota: job id → unix ms until which the run
// may hold its place (its deadline; released at its end), the key expiring
// with its last member. Its own tag {quota:<pool>/<tenant>}. Owner:
// internal/quota.
func QuotaRunning(tenant, pool string) string {
	return prefix + "{quota:" + pool + "/" + tenant + "}:running"
}

// FairKeys are the keys of one pool's fair-share state, all on the tag
// {fair:<pool>}. Owner: internal/fairq (admission from internal/submit and
// the orchestrator's reconciler, job ends from internal/lifecycle's hook).
// None has a TTL: entries leave when their job moves to the queue or ends.
type FairKeys struct {
	// QueuePrefix precedes a tenant's name in the key of its sub-queue (zset:
	// job id → priority index·1e12 + sequence, so priority then FIFO).
	QueuePrefix string
	// Jobs is the hash of waiting jobs: job id → "tenant|priority|not_before
	// ms|payload".
	Jobs string
	// Active is the zset of tenants with waiting jobs: tenant → virtual time
	// (slot-seconds served ÷ weight).
	Active string
	// VT is the hash of tenants' virtual times while they wait for nothing.
	VT string
	// Weights and Limits are hashes tenant → fair-share weight, and tenant →
	// max_running (0: none), written at each submit and quota change.
	Weights, Limits string
	// Out is the zset of jobs fair-share admission put in the pool's queue
	// that have not ended: job id → unix ms of the move; OutInfo is the hash
	// job id → "tenant|charged slot-seconds"; OutN the hash tenant → count.
	Out, OutInfo, OutN string
	// Moving is the hash of jobs picked from a sub-queue whose enqueue is not
	// confirmed yet: job id → "unix ms|message" (re-sent by the next pump).
	Moving string
	// Stats is the hash of the pool's figures: seq (sub-queue sequence),
	// clock (virtual time of the last pick), ewma and n (run slot-seconds).
	Stats string
}

// Fair returns the fair-share keys of pool, e.g. aigw:{fair:gpu-a100}:jobs.
func Fair(pool string) FairKeys {
	p := tagged("fair:" + pool)
	return FairKeys{QueuePrefix: p + "q:", Jobs: p + "jobs", Active: p + "active", VT: p + "vt",
		Weights: p + "weights", Limits: p + "limits", Out: p + "out", OutInfo: p + "out:info",
		OutN: p + "out:n", Moving: p + "moving", Stats: p + "stats"}
}

// AsyncKeys are the keys of one gateway's async invocation queue, all on the
// tag {<tag>} (default "gateway-async"). Owner: gateway/internal/async.
type AsyncKeys struct {
	// Calls is the stream of calls (XADD/XREADGROUP, no TTL; entries are
	// deleted when delivered).
	Calls string
	// Attempts is the hash call id → attempts made (no TTL; fields deleted when
	// the call is done).
	Attempts string
	// DonePrefix precedes a call id in the key of a string marking the call as
	// delivered (24 h TTL); see AsyncDone.
	DonePrefix string
}

// AsyncQueue returns the keys of the async queue with hash tag tag, e.g.
// aigw:{gateway-async}:calls.
func AsyncQueue(tag string) AsyncKeys {
	p := tagged(tag)
	return AsyncKeys{Calls: p + "calls", Attempts: p + "attempts", DonePrefix: p + "done:"}
}

// AsyncDone is the string marking call callID of the async queue tag as
// delivered (24 h TTL).
func AsyncDone(tag, callID string) string { return AsyncQueue(tag).DonePrefix + callID }

// OrchestratorTick is the orchestrator's tick lease: TickLease("orchestrator").
const OrchestratorTick = prefix + "{orchestrator}:tick"

// TickLease is the lease of an orchestrator cycle named name (string: the
// holder's fencing token, with the lease TTL, renewed while the tick works).
// Production uses OrchestratorTick; tests and benchmarks isolate theirs by
// name. Owner: functions/orchestrator.
func TickLease(name string) string { return tagged(name) + "tick" }
