package queue

import (
	"github.com/redis/go-redis/v9"
)

// Every script touches the keys of one pool shard only, all of which share the hash
// tag {<pool>#<shard>}, so each runs on one cluster slot. Time comes from the server
// (TIME) so that producers and consumers on different hosts agree on not_before.
//
// Stream entries carry the fields j (job id) and, when set, p (payload).
// The membership hash maps a job id to "<priority>" (in a stream) or "delayed",
// and holds two fields of the shard's own that no job id can be (job ids have
// no '|'): "|h", the shard's copy of the pool's high-waiting hint (see
// takeScript), and "|d", the earliest not_before in the delayed zset (unset
// when it is empty), so that a take reads both with one HMGET and touches the
// delayed zset only when a job there is due.

// wakeLua is the part of a script that adds an entry to a shard's stream and
// decides whom to wake (KEYS[4] the shard's copy of the pool's idle homes,
// ARGV[1] the job id, ARGV[5] the shard's number): nobody when a consumer homed
// on this shard is idle (-2: blocked in a read of this shard, it gets the entry
// from Redis itself), else the home shard of an idle consumer elsewhere (one
// picked by the job id, for the producer to wake, see wakeScript), or -1 when
// no consumer is idle: busy consumers come back to the shards by themselves,
// and register nowhere. The copy holds at most one member per shard.
const wakeLua = `
local function servertime()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function wake()
  local idle = redis.call('ZRANGE', KEYS[4], 0, -1, 'WITHSCORES')
  if #idle == 0 then return -1 end
  local now, homes, expired = servertime(), {}, false
  for i = 1, #idle, 2 do
    local h = tonumber(idle[i])
    if tonumber(idle[i + 1]) < now then
      expired = true
    elseif h == tonumber(ARGV[5]) then
      return -2
    else
      homes[#homes + 1] = h
    end
  end
  if expired then redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', now - 1) end
  if #homes == 0 then return -1 end
  return homes[string.byte(ARGV[1], -1) % #homes + 1]
end
`

// delayLua adds a delayed job (KEYS[1] membership hash, KEYS[3] delayed zset,
// member prio|id|payload, score nb) and keeps the hash's "|d" at the earliest
// due time.
const delayLua = `
local function delay(ids, zset, nb, member)
  redis.call('ZADD', zset, nb, member)
  local d = redis.call('HGET', ids, '|d')
  if not d or nb < tonumber(d) then redis.call('HSET', ids, '|d', nb) end
end
`

// enqueueScript adds a job to its shard unless the job is already there, and
// says whom to wake (see wakeLua), unless ARGV[6] = 1: the producer found
// nobody idle on this shard a moment ago (see Queue.quiet) and skips the look.
//
//	KEYS[1] membership hash   KEYS[2] priority stream   KEYS[3] delayed zset
//	KEYS[4] idle homes zset
//	ARGV[1] job id   ARGV[2] priority   ARGV[3] payload ("" = none)
//	ARGV[4] not_before, unix ms (0 = now)   ARGV[5] the shard's number
//	ARGV[6] 1: do not look for idle consumers
//
// Result: {the new stream entry id, "delayed", or "" when the job was already
// queued on this shard (enqueue is idempotent per job id); the home shard of
// a consumer to wake, -1 (no consumer of the pool is idle), -2 (one homed on
// this shard is) or -3 (not looked)}.
var enqueueScript = redis.NewScript(wakeLua + delayLua + `
local nb = tonumber(ARGV[4])
if nb > 0 and nb > servertime() then
  if redis.call('HSETNX', KEYS[1], ARGV[1], 'delayed') == 0 then return {'', -3} end
  delay(KEYS[1], KEYS[3], nb, ARGV[2] .. '|' .. ARGV[1] .. '|' .. ARGV[3])
  return {'delayed', -3}
end
if redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2]) == 0 then return {'', -3} end
local id
if ARGV[3] == '' then
  id = redis.call('XADD', KEYS[2], '*', 'j', ARGV[1])
else
  id = redis.call('XADD', KEYS[2], '*', 'j', ARGV[1], 'p', ARGV[3])
end
if ARGV[6] == '1' then return {id, -3} end
return {id, wake()}
`)

// wakeScript wakes the consumers idle on a home shard: it adds an entry naming
// the shards that got jobs to the shard's wake-up stream, which their blocking
// read includes.
//
//	KEYS[1] wake-up stream   ARGV[1] the shards, comma-separated
//
// Result: the entry id.
var wakeScript = redis.NewScript(`
return redis.call('XADD', KEYS[1], 'MAXLEN', '~', 256, '*', 's', ARGV[1])
`)

// takeScript acknowledges finished entries of this shard, moves due delayed jobs
// into their streams, then reads up to ARGV[3] new entries for the consumer from
// the first ARGV[4] priority streams, high priority first. Acknowledging deletes
// the entry (XDEL), so a stream holds only queued and running jobs, and the job's
// membership. With a count of 0 it only acknowledges and promotes.
//
// Priority across the pool: each shard holds a copy of the pool's "high waiting"
// hint (the field "|h" of KEYS[5]), which producers of high jobs increment on
// every shard of the pool after the enqueue. A take that obeys the hint (ARGV[5] = 0) reads only the
// high stream while the hint is set, and returns the hint, so the consumer looks
// for high jobs on the other shards (a scan: ARGV[5] = 1, which also says what
// each shard has waiting) before it takes a normal or low one here; the consumer
// clears the hints when a scan finds no high job anywhere.
//
// Wake-ups: ARGV[6] > 0 registers the consumer's home shard ARGV[7] in this
// shard's copy of the pool's idle homes for that many ms (a later expiry of
// another consumer of that home is kept; see enqueueScript). Acks of priority
// index 4 are wake-up entries of KEYS[6] the consumer has read.
//
// Delayed jobs: the take promotes them when "|d" (the earliest due time) has
// come, or when ARGV[8] = 1 (a check that does not trust "|d": consumers ask
// for one now and then, so that a zset written without "|d", e.g. by an older
// version, is still served), and sets "|d" to the next due time.
//
//	KEYS[1..3] high, normal, low streams   KEYS[4] delayed zset   KEYS[5] membership hash
//	KEYS[6] wake-up stream   KEYS[7] idle homes zset
//	ARGV[1] group   ARGV[2] consumer   ARGV[3] count   ARGV[4] levels: read streams 1..levels
//	ARGV[5] 0: obey the hint; 1: ignore it and report what is waiting
//	ARGV[6] idle ms   ARGV[7] home shard   ARGV[8] 1: check the delayed zset
//	ARGV[9] number of acks n   ARGV[10..9+3n] acks as triples {priority index
//	(1..3, or 4: a wake-up entry), entry id, job id}
//
// Result: {waiting, hint, then a flat array of triples {priority index (1..3),
// entry id, fields}}. waiting (reported only with ARGV[5] = 1, else 0) is the
// first priority index whose stream still holds entries never delivered to the
// group (a stream without the group counts: the consumer's read creates it
// again), 0 when none does. hint is the hint's value ("" when unset).
var takeScript = redis.NewScript(`
local now
local function servertime()
  if not now then
    local t = redis.call('TIME')
    now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  end
  return now
end
local nacks = tonumber(ARGV[9])
if nacks > 0 then
  local ids, jobs = {{}, {}, {}, {}}, {}
  for i = 0, nacks - 1 do
    local p = tonumber(ARGV[10 + 3 * i])
    ids[p][#ids[p] + 1] = ARGV[11 + 3 * i]
    if p <= 3 then jobs[#jobs + 1] = ARGV[12 + 3 * i] end
  end
  for p = 1, 4 do
    if #ids[p] > 0 then
      local key = KEYS[p]
      if p == 4 then key = KEYS[6] end
      redis.call('XACK', key, ARGV[1], unpack(ids[p]))
      redis.call('XDEL', key, unpack(ids[p]))
    end
  end
  if #jobs > 0 then redis.call('HDEL', KEYS[5], unpack(jobs)) end
end
if tonumber(ARGV[6]) > 0 then
  redis.call('ZADD', KEYS[7], 'GT', servertime() + tonumber(ARGV[6]), ARGV[7])
end
local meta = redis.call('HMGET', KEYS[5], '|h', '|d')
local first = tonumber(meta[2])
if ARGV[8] == '1' or (first and first <= servertime()) then
  local due = redis.call('ZRANGEBYSCORE', KEYS[4], '-inf', servertime(), 'LIMIT', 0, 256)
  for _, m in ipairs(due) do
    local a = string.find(m, '|', 1, true)
    local b = string.find(m, '|', a + 1, true)
    local prio, id, payload = string.sub(m, 1, a - 1), string.sub(m, a + 1, b - 1), string.sub(m, b + 1)
    local key = KEYS[2]
    if prio == 'high' then key = KEYS[1] elseif prio == 'low' then key = KEYS[3] end
    if payload == '' then
      redis.call('XADD', key, '*', 'j', id)
    else
      redis.call('XADD', key, '*', 'j', id, 'p', payload)
    end
    redis.call('HSET', KEYS[5], id, prio)
    redis.call('ZREM', KEYS[4], m)
  end
  local after = redis.call('ZRANGE', KEYS[4], 0, 0, 'WITHSCORES')
  if #after == 0 then
    if first then redis.call('HDEL', KEYS[5], '|d') end
  elseif tonumber(after[2]) ~= first then
    redis.call('HSET', KEYS[5], '|d', after[2])
  end
end
local levels = tonumber(ARGV[4])
local report = ARGV[5] == '1'
local hint = meta[1] or ''
if not report and hint ~= '' then levels = math.min(levels, 1) end
local out = {0, hint}
local left = tonumber(ARGV[3])
local drained = {false, false, false}
for i = 1, levels do
  if left <= 0 then break end
  local r = redis.call('XREADGROUP', 'GROUP', ARGV[1], ARGV[2], 'COUNT', left, 'STREAMS', KEYS[i], '>')
  local n = 0
  if r then
    for _, e in ipairs(r[1][2]) do
      out[#out + 1] = i
      out[#out + 1] = e[1]
      out[#out + 1] = e[2]
      n = n + 1
    end
  end
  drained[i] = n < left
  left = left - n
end
if report then
  for i = 1, 3 do
    if not drained[i] and redis.call('XLEN', KEYS[i]) > 0 then
      local last
      for _, g in ipairs(redis.call('XINFO', 'GROUPS', KEYS[i])) do
        local name, id
        for k = 1, #g, 2 do
          if g[k] == 'name' then name = g[k + 1] elseif g[k] == 'last-delivered-id' then id = g[k + 1] end
        end
        if name == ARGV[1] then last = id end
      end
      if not last or #redis.call('XRANGE', KEYS[i], '(' .. last, '+', 'COUNT', 1) > 0 then
        out[1] = i
        break
      end
    end
  end
end
return out
`)

// dropWakesScript acknowledges and deletes wake-up entries read longer than
// ARGV[3] ms ago and never acknowledged (their reader died), so the stream's
// pending list does not grow.
//
//	KEYS[1] wake-up stream   ARGV[1] group   ARGV[2] consumer   ARGV[3] ms
//
// Result: how many it dropped.
var dropWakesScript = redis.NewScript(`
local r = redis.call('XAUTOCLAIM', KEYS[1], ARGV[1], ARGV[2], ARGV[3], '0-0', 'COUNT', 256, 'JUSTID')
if #r[2] == 0 then return 0 end
redis.call('XACK', KEYS[1], ARGV[1], unpack(r[2]))
redis.call('XDEL', KEYS[1], unpack(r[2]))
return #r[2]
`)

// clearHintScript clears a shard's copy of the pool's high-waiting hint unless a
// producer incremented it since the consumer's scan read it (KEYS[1] the
// membership hash that holds it, ARGV[1] the value the scan saw).
var clearHintScript = redis.NewScript(`
if redis.call('HGET', KEYS[1], '|h') == ARGV[1] then return redis.call('HDEL', KEYS[1], '|h') end
return 0
`)

// extendScript renews the leases of entries this consumer still owns (resetting
// their idle time) and reports the ones it lost to another consumer.
//
//	KEYS[1] stream   ARGV[1] group   ARGV[2] consumer   ARGV[3..] entry ids
//
// Result: the entry ids that are no longer this consumer's.
var extendScript = redis.NewScript(`
local lost = {}
for i = 3, #ARGV do
  local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1, ARGV[2])
  if #p == 1 then
    redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[i], 'JUSTID')
  else
    lost[#lost + 1] = ARGV[i]
  end
end
return lost
`)

// reclaimScript takes over entries whose lease ran out (idle longer than the lease:
// their consumer died or hung), and moves those delivered too often to the
// dead-letter stream.
//
//	KEYS[1] stream   KEYS[2] dead-letter stream   KEYS[3] membership hash
//	ARGV[1] group   ARGV[2] consumer   ARGV[3] lease ms   ARGV[4] count
//	ARGV[5] max deliveries   ARGV[6] dead-letter max length
//
// Result: a flat array of triples {entry id, fields, delivery count} now owned by
// the consumer.
var reclaimScript = redis.NewScript(`
local r = redis.call('XAUTOCLAIM', KEYS[1], ARGV[1], ARGV[2], ARGV[3], '0-0', 'COUNT', ARGV[4])
local out = {}
for _, e in ipairs(r[2]) do
  local id, fields = e[1], e[2]
  local p = redis.call('XPENDING', KEYS[1], ARGV[1], id, id, 1)
  local n = p[1][4]
  if n > tonumber(ARGV[5]) then
    local job = ''
    for k = 1, #fields, 2 do if fields[k] == 'j' then job = fields[k + 1] end end
    redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[6], '*', 'reason', 'max_deliveries', 'stream', KEYS[1],
      'entry', id, 'deliveries', n, unpack(fields))
    redis.call('XACK', KEYS[1], ARGV[1], id)
    redis.call('XDEL', KEYS[1], id)
    if job ~= '' then redis.call('HDEL', KEYS[3], job) end
  else
    out[#out + 1] = id
    out[#out + 1] = fields
    out[#out + 1] = n
  end
end
return out
`)

// deadLetterScript moves one taken entry to the dead-letter stream.
//
//	KEYS[1] stream   KEYS[2] dead-letter stream   KEYS[3] membership hash
//	ARGV[1] group   ARGV[2] entry id   ARGV[3] reason   ARGV[4] job id ("" if unknown)
//	ARGV[5] dead-letter max length   ARGV[6..] the entry's fields
//
// Result: the dead-letter entry id.
var deadLetterScript = redis.NewScript(`
local fields = {}
for i = 6, #ARGV do fields[#fields + 1] = ARGV[i] end
local id = redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[5], '*', 'reason', ARGV[3], 'stream', KEYS[1],
  'entry', ARGV[2], unpack(fields))
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
redis.call('XDEL', KEYS[1], ARGV[2])
if ARGV[4] ~= '' then redis.call('HDEL', KEYS[3], ARGV[4]) end
return id
`)

// statsScript reports one shard's queue.
//
//	KEYS[1..3] high, normal, low streams   KEYS[4] delayed zset   KEYS[5] dead-letter stream
//	ARGV[1] group
//
// Result: {len, pending, oldest undelivered entry id or ""} for each of the three
// streams, then the delayed count, then the dead-letter length.
var statsScript = redis.NewScript(`
local out = {}
for i = 1, 3 do
  local len, pending, oldest = 0, 0, ''
  if redis.call('EXISTS', KEYS[i]) == 1 then
    len = redis.call('XLEN', KEYS[i])
    local last = '0-0'
    for _, g in ipairs(redis.call('XINFO', 'GROUPS', KEYS[i])) do
      local info = {}
      for k = 1, #g, 2 do info[g[k]] = g[k + 1] end
      if info['name'] == ARGV[1] then
        pending = info['pending']
        last = info['last-delivered-id']
      end
    end
    local first = redis.call('XRANGE', KEYS[i], '(' .. last, '+', 'COUNT', 1)
    if #first > 0 then oldest = first[1][1] end
  end
  out[#out + 1] = len
  out[#out + 1] = pending
  out[#out + 1] = oldest
end
out[#out + 1] = redis.call('ZCARD', KEYS[4])
out[#out + 1] = redis.call('XLEN', KEYS[5])
return out
`)

var allScripts = []*redis.Script{enqueueScript, wakeScript, takeScript, dropWakesScript, clearHintScript, extendScript, reclaimScript, deadLetterScript, statsScript}
