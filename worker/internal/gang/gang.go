// Package gang reserves worker slots for gang jobs (a job run as N members at
// once) all-or-nothing, in Lua scripts on the pool's hash tag, so competing
// gangs never hold partial reservations and never deadlock.
//
// Keys (all on the pool's tag, the tag of registry.WorkersKey):
//
//	aigw:{<pool>}:gang:free        hash: node → "<free slots>|<expiry unix ms>"
//	aigw:{<pool>}:gang:res         hash: job id → Reservation as JSON
//	aigw:{<pool>}:gang:out:<job>   hash: rank → MemberResult as JSON
//
// Every worker publishes its free slots (Publish) on each loop; the script
// subtracts the members reserved on the node that have not started yet, so a
// reservation's slots stay taken until its members start (then they count as
// the worker's busy slots) or it is released. A gang leader (the worker that
// took the job from the queue, holding one slot for it) calls Reserve, which
// picks N free slots (its own first, rank 0 being the leader itself) or
// reserves nothing. Other workers find members addressed to them with
// Reservations and claim each with Start. A reservation lives while the leader
// renews it (Renew); one left to expire (its leader died) is deleted by the
// next Reserve, and its members stop.
package gang

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/aigw/aigw/internal/rediskeys"
)

// States of a reservation.
const (
	Pending = "pending" // members are starting
	Running = "running" // every member started; the job is running
	Abort   = "abort"   // the leader gave up (a member failed, or not all started in time): members stop
)

// Member is one rank of a gang.
type Member struct {
	Rank    int    `json:"rank"`
	Node    string `json:"node"`
	Started bool   `json:"started"`
}

// Reservation is a gang's set of slots and its rendezvous data.
type Reservation struct {
	JobID   string   `json:"job"`
	Attempt int      `json:"attempt"`
	Leader  string   `json:"leader"`
	Size    int      `json:"size"`
	Addr    string   `json:"addr"` // MASTER_ADDR: rank 0's (the leader's) advertise address
	Port    int      `json:"port"` // MASTER_PORT, picked by the leader
	Expires int64    `json:"expires"`
	State   string   `json:"state"`
	Members []Member `json:"members"`
}

// MemberResult is what a member reports when its run ends.
type MemberResult struct {
	OK      bool            `json:"ok"`
	Output  json.RawMessage `json:"output,omitempty"`
	Code    string          `json:"code,omitempty"`
	Message string          `json:"message,omitempty"`
}

// Gang reserves the slots of one pool.
type Gang struct {
	rdb  redis.UniversalClient
	pool string
}

// New returns the gang reservations of pool.
func New(rdb redis.UniversalClient, pool string) *Gang { return &Gang{rdb: rdb, pool: pool} }

func (g *Gang) freeKey() string { return rediskeys.GangFree(g.pool) }
func (g *Gang) resKey() string  { return rediskeys.GangReservations(g.pool) }

// OutKey is the key of a gang's member results.
func (g *Gang) OutKey(jobID string) string { return rediskeys.GangOutput(g.pool, jobID) }

// luaNow is the server's clock in ms, shared by the scripts.
const luaNow = `local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
`

// publishScript records a node's free slots, less its reserved members that
// have not started.
//
//	KEYS[1] free hash   KEYS[2] reservations hash
//	ARGV[1] node   ARGV[2] free slots (the worker's own count)   ARGV[3] ttl ms
//
// Result: the free slots recorded.
var publishScript = redis.NewScript(luaNow + `
local pending = 0
for _, v in ipairs(redis.call('HVALS', KEYS[2])) do
  local r = cjson.decode(v)
  if r.expires > now and r.state ~= 'abort' then
    for _, m in ipairs(r.members) do
      if m.node == ARGV[1] and not m.started then pending = pending + 1 end
    end
  end
end
local free = math.max(tonumber(ARGV[2]) - pending, 0)
redis.call('HSET', KEYS[1], ARGV[1], free .. '|' .. (now + tonumber(ARGV[3])))
return free
`)

// reserveScript reserves N slots all-or-nothing. The leader holds one slot for
// the job already (ARGV[4]) and gets rank 0; its other free slots come next,
// then other live nodes', most free first. The leader's free slots come from
// the leader itself (ARGV[9]), not from its last Publish, which may predate
// the delivery it holds. Expired reservations are deleted
// first. Reserving again for a job that has a reservation returns it.
//
//	KEYS[1] free hash   KEYS[2] reservations hash
//	ARGV[1] job id   ARGV[2] size N   ARGV[3] leader node   ARGV[4] slots the leader holds
//	ARGV[5] addr   ARGV[6] port   ARGV[7] ttl ms   ARGV[8] attempt
//	ARGV[9] the leader's own free slots now (besides those it holds)
//
// Result: the reservation as JSON, or false when fewer than N slots are free.
var reserveScript = redis.NewScript(luaNow + `
local n, leader, held = tonumber(ARGV[2]), ARGV[3], tonumber(ARGV[4])
local pendingLeader = 0
local all = redis.call('HGETALL', KEYS[2])
for i = 1, #all, 2 do
  local r = cjson.decode(all[i + 1])
  if r.expires <= now then
    redis.call('HDEL', KEYS[2], all[i])
  elseif r.state ~= 'abort' then
    for _, m in ipairs(r.members) do
      if m.node == leader and not m.started then pendingLeader = pendingLeader + 1 end
    end
  end
end
local existing = redis.call('HGET', KEYS[2], ARGV[1])
if existing then return existing end
local nodes = {}
local frees = redis.call('HGETALL', KEYS[1])
local leaderFree = math.max(tonumber(ARGV[9]) - pendingLeader, 0)
for i = 1, #frees, 2 do
  local sep = string.find(frees[i + 1], '|', 1, true)
  local free = tonumber(string.sub(frees[i + 1], 1, sep - 1))
  local exp = tonumber(string.sub(frees[i + 1], sep + 1))
  if exp > now and free > 0 and frees[i] ~= leader then nodes[#nodes + 1] = {frees[i], free} end
end
table.sort(nodes, function(a, b) if a[2] ~= b[2] then return a[2] > b[2] end return a[1] < b[1] end)
table.insert(nodes, 1, {leader, leaderFree + held})
local members, used = {}, {}
for _, nd in ipairs(nodes) do
  local take = math.min(nd[2], n - #members)
  for k = 1, take do
    members[#members + 1] = {rank = #members, node = nd[1], started = (nd[1] == leader and k <= held)}
  end
  used[nd[1]] = take
  if #members == n then break end
end
if #members < n then return false end
for node, take in pairs(used) do
  if node == leader then
    redis.call('HSET', KEYS[1], node, (leaderFree - (take - held)) .. '|' .. (now + tonumber(ARGV[7])))
  elseif take > 0 then
    local v = redis.call('HGET', KEYS[1], node)
    local sep = string.find(v, '|', 1, true)
    redis.call('HSET', KEYS[1], node, (tonumber(string.sub(v, 1, sep - 1)) - take) .. string.sub(v, sep))
  end
end
local r = {job = ARGV[1], attempt = tonumber(ARGV[8]), leader = leader, size = n, addr = ARGV[5],
  port = tonumber(ARGV[6]), expires = now + tonumber(ARGV[7]), state = 'pending', members = members}
local s = cjson.encode(r)
redis.call('HSET', KEYS[2], ARGV[1], s)
return s
`)

// startScript claims a reserved member for the node that starts it.
//
//	KEYS[1] reservations hash   ARGV[1] job id   ARGV[2] rank   ARGV[3] node
//
// Result: the reservation as JSON, or false when it is gone, aborting, or the
// member is not this node's or already started.
var startScript = redis.NewScript(`
local v = redis.call('HGET', KEYS[1], ARGV[1])
if not v then return false end
local r = cjson.decode(v)
if r.state == 'abort' then return false end
for _, m in ipairs(r.members) do
  if m.rank == tonumber(ARGV[2]) then
    if m.node ~= ARGV[3] or m.started then return false end
    m.started = true
    local s = cjson.encode(r)
    redis.call('HSET', KEYS[1], ARGV[1], s)
    return s
  end
end
return false
`)

// renewScript extends a reservation and sets its state ("" keeps it).
//
//	KEYS[1] reservations hash   ARGV[1] job id   ARGV[2] ttl ms   ARGV[3] state
//
// Result: the reservation as JSON, or false when it is gone.
var renewScript = redis.NewScript(luaNow + `
local v = redis.call('HGET', KEYS[1], ARGV[1])
if not v then return false end
local r = cjson.decode(v)
r.expires = now + tonumber(ARGV[2])
if ARGV[3] ~= '' then r.state = ARGV[3] end
local s = cjson.encode(r)
redis.call('HSET', KEYS[1], ARGV[1], s)
return s
`)

// Publish records node's free slots for ttl.
func (g *Gang) Publish(ctx context.Context, node string, free int, ttl time.Duration) error {
	if err := publishScript.Run(ctx, g.rdb, []string{g.freeKey(), g.resKey()}, node, free, ttl.Milliseconds()).Err(); err != nil {
		return fmt.Errorf("publish free slots of %s: %w", node, err)
	}
	return nil
}

// Unpublish removes node from the free slots (on exit).
func (g *Gang) Unpublish(ctx context.Context, node string) error {
	return g.rdb.HDel(ctx, g.freeKey(), node).Err()
}

// Request asks for a reservation.
type Request struct {
	JobID   string
	Attempt int
	Size    int
	Leader  string
	Held    int // slots the leader already holds for the job (1)
	Free    int // the leader's other free slots now
	Addr    string
	Port    int
	TTL     time.Duration
}

// Reserve reserves r.Size slots, or nothing: (nil, nil) when too few are free.
func (g *Gang) Reserve(ctx context.Context, r Request) (*Reservation, error) {
	v, err := reserveScript.Run(ctx, g.rdb, []string{g.freeKey(), g.resKey()},
		r.JobID, r.Size, r.Leader, r.Held, r.Addr, r.Port, r.TTL.Milliseconds(), r.Attempt, r.Free).Text()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reserve gang of %d for job %s: %w", r.Size, r.JobID, err)
	}
	return decode(v)
}

func decode(v string) (*Reservation, error) {
	var r Reservation
	if err := json.Unmarshal([]byte(v), &r); err != nil {
		return nil, fmt.Errorf("gang reservation %q: %w", v, err)
	}
	return &r, nil
}

// Reservations returns every reservation of the pool.
func (g *Gang) Reservations(ctx context.Context) ([]Reservation, error) {
	m, err := g.rdb.HGetAll(ctx, g.resKey()).Result()
	if err != nil {
		return nil, fmt.Errorf("gang reservations: %w", err)
	}
	out := make([]Reservation, 0, len(m))
	for _, v := range m {
		r, err := decode(v)
		if err != nil {
			return nil, err
		}
		out = append(out, *r)
	}
	return out, nil
}

// Get returns a job's reservation, nil when there is none.
func (g *Gang) Get(ctx context.Context, jobID string) (*Reservation, error) {
	v, err := g.rdb.HGet(ctx, g.resKey(), jobID).Result()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("gang reservation of job %s: %w", jobID, err)
	}
	return decode(v)
}

// Start claims member rank of a job's reservation for node; false means the
// member is not to be started (the reservation is gone or aborting).
func (g *Gang) Start(ctx context.Context, jobID string, rank int, node string) (*Reservation, error) {
	v, err := startScript.Run(ctx, g.rdb, []string{g.resKey()}, jobID, rank, node).Text()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("start member %d of job %s: %w", rank, jobID, err)
	}
	return decode(v)
}

// Renew extends a reservation by ttl and sets its state ("" keeps it); it
// returns nil when the reservation is gone.
func (g *Gang) Renew(ctx context.Context, jobID string, ttl time.Duration, state string) (*Reservation, error) {
	v, err := renewScript.Run(ctx, g.rdb, []string{g.resKey()}, jobID, ttl.Milliseconds(), state).Text()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("renew gang reservation of job %s: %w", jobID, err)
	}
	return decode(v)
}

// Report records a member's result.
func (g *Gang) Report(ctx context.Context, jobID string, rank int, res MemberResult) error {
	b, err := json.Marshal(res)
	if err != nil {
		return err
	}
	pipe := g.rdb.TxPipeline()
	pipe.HSet(ctx, g.OutKey(jobID), strconv.Itoa(rank), b)
	pipe.Expire(ctx, g.OutKey(jobID), 24*time.Hour)
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("report member %d of job %s: %w", rank, jobID, err)
	}
	return nil
}

// Results returns the members' results reported so far, by rank.
func (g *Gang) Results(ctx context.Context, jobID string) (map[int]MemberResult, error) {
	m, err := g.rdb.HGetAll(ctx, g.OutKey(jobID)).Result()
	if err != nil {
		return nil, fmt.Errorf("gang results of job %s: %w", jobID, err)
	}
	out := make(map[int]MemberResult, len(m))
	for k, v := range m {
		rank, err := strconv.Atoi(k)
		if err != nil {
			continue
		}
		var r MemberResult
		if err := json.Unmarshal([]byte(v), &r); err != nil {
			return nil, fmt.Errorf("gang result of job %s rank %s: %w", jobID, k, err)
		}
		out[rank] = r
	}
	return out, nil
}

// Release deletes a job's reservation and results: its unstarted members' slots
// count as free again at their nodes' next Publish.
func (g *Gang) Release(ctx context.Context, jobID string) error {
	pipe := g.rdb.TxPipeline()
	pipe.HDel(ctx, g.resKey(), jobID)
	pipe.Del(ctx, g.OutKey(jobID))
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("release gang reservation of job %s: %w", jobID, err)
	}
	return nil
}
