package fairq

import "github.com/redis/go-redis/v9"

// Every script touches the keys of one pool's fair-share state only
// (rediskeys.Fair), all on the hash tag {fair:<pool>}, so each runs on one
// cluster slot. The tenants' sub-queues are named in the script from the prefix
// ARGV[1] (their number is not known in advance); they carry the same tag, so
// they live in the same slot as KEYS.
//
//	KEYS[1] jobs   KEYS[2] active   KEYS[3] vt   KEYS[4] weights   KEYS[5] limits
//	KEYS[6] out    KEYS[7] out:info KEYS[8] out:n KEYS[9] moving   KEYS[10] stats
//	ARGV[1] sub-queue prefix
//
// Messages (jobs, moving) are JSON {t: tenant, p: priority, n: not_before ms,
// d: payload}; out:info values are JSON {t: tenant, c: slot-seconds charged}.
//
// Fair share is start-time fair queueing over the tenants' sub-queues: each
// tenant has a virtual time, its slot-seconds served divided by its weight; a
// pick takes the head (priority, then FIFO) of the waiting tenant with the
// lowest virtual time among those under their max_running, and charges it the
// tenant's mean run in the pool (slot-seconds, EWMA; the pool's before its
// first) divided by its weight; when the job
// ends its real slot-seconds replace the estimate. A tenant that starts
// waiting starts at the pool's clock (the virtual time of the last pick), so an
// idle tenant neither banks credit nor waits for the others' history: its
// first job is the next pick.
const commonLua = `
local J, A, VT, W, L, O, OI, ON, M, S = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8], KEYS[9], KEYS[10]
local QP = ARGV[1]
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function weight(t)
  local w = tonumber(redis.call('HGET', W, t))
  if not w or w <= 0 then w = 1 end
  return w
end
local function est()
  local e = tonumber(redis.call('HGET', S, 'ewma'))
  if not e or e <= 0 then e = 1 end
  return e
end
local function test(t)
  local e = tonumber(redis.call('HGET', S, 'ewma:' .. t))
  if not e or e <= 0 then return est() end
  return e
end
local function clock() return tonumber(redis.call('HGET', S, 'clock')) or 0 end
local function advance(v) if v > clock() then redis.call('HSET', S, 'clock', v) end end
local function eligible(t)
  local lim = tonumber(redis.call('HGET', L, t)) or 0
  if lim <= 0 then return true end
  return (tonumber(redis.call('HGET', ON, t)) or 0) < lim
end
local function charge_out(id, t, now)
  local c = test(t)
  redis.call('ZADD', O, now, id)
  redis.call('HSET', OI, id, cjson.encode({t = t, c = c}))
  redis.call('HINCRBY', ON, t, 1)
  return c
end
local function activate(t)
  if redis.call('ZSCORE', A, t) then return end
  local v = math.max(tonumber(redis.call('HGET', VT, t)) or 0, clock())
  redis.call('ZADD', A, v, t)
  redis.call('HDEL', VT, t)
end
local function deactivate(t)
  local v = redis.call('ZSCORE', A, t)
  if v then
    redis.call('ZREM', A, t)
    redis.call('HSET', VT, t, v)
  end
end
local function free(cap) return cap - redis.call('ZCARD', O) end
local function pick(n, now, out)
  while n > 0 do
    local act = redis.call('ZRANGE', A, 0, -1, 'WITHSCORES')
    local t, v
    for i = 1, #act, 2 do
      if eligible(act[i]) then
        t, v = act[i], tonumber(act[i + 1])
        break
      end
    end
    if not t then break end
    local q = QP .. t
    local head = redis.call('ZRANGE', q, 0, 0)
    if #head == 0 then
      deactivate(t)
    else
      local id = head[1]
      redis.call('ZREM', q, id)
      local msg = redis.call('HGET', J, id)
      redis.call('HDEL', J, id)
      advance(v)
      local c = charge_out(id, t, now)
      redis.call('ZADD', A, v + c / weight(t), t)
      if redis.call('ZCARD', q) == 0 then deactivate(t) end
      if msg then
        redis.call('HSET', M, id, now .. '|' .. msg)
        out[#out + 1] = id
        out[#out + 1] = msg
      end
      n = n - 1
    end
  end
  return out
end
`

// admitScript takes a new job: straight to the queue ("direct") while nothing
// waits, the pool has room (fewer than cap jobs out) and the tenant is under its
// max_running; else into the tenant's sub-queue ("held"), followed by a pick of
// as many jobs as the pool has room for. It also records the tenant's weight
// and limit. A job waiting or being moved already is "dup" (admission is
// idempotent); one out in the queue already (e.g. retried) is "out": the
// caller enqueues it again, which the queue makes idempotent.
//
//	ARGV[2] job id   ARGV[3] tenant   ARGV[4] priority index (0 high .. 2 low)
//	ARGV[5] message   ARGV[6] weight   ARGV[7] max_running (0: none)   ARGV[8] cap
//
// Result: {"direct"} | {"dup"} | {"out"} | {"held", then pairs job id,
// message picked}.
var admitScript = redis.NewScript(commonLua + `
local id, t = ARGV[2], ARGV[3]
if redis.call('HEXISTS', J, id) == 1 or redis.call('HEXISTS', M, id) == 1 then return {'dup'} end
if redis.call('HEXISTS', OI, id) == 1 then return {'out'} end
redis.call('HSET', W, t, ARGV[6])
redis.call('HSET', L, t, ARGV[7])
local now, cap = now_ms(), tonumber(ARGV[8])
if redis.call('HLEN', J) == 0 and free(cap) > 0 and eligible(t) then
  local v = math.max(tonumber(redis.call('HGET', VT, t)) or 0, clock())
  advance(v)
  local c = charge_out(id, t, now)
  redis.call('HSET', VT, t, v + c / weight(t))
  return {'direct'}
end
local seq = redis.call('HINCRBY', S, 'seq', 1)
redis.call('ZADD', QP .. t, tonumber(ARGV[4]) * 1e12 + seq, id)
redis.call('HSET', J, id, ARGV[5])
activate(t)
return pick(free(cap), now, {'held'})
`)

// doneScript forgets a job that ended (or left the queue: canceled, expired,
// its tenant deleted): a waiting job leaves its sub-queue; a job out in the
// queue frees its room and its tenant's place, and its real slot-seconds
// (ARGV[3], 0: unknown) replace its charge and feed the pool's and its
// tenant's mean runs and the pool's service rate (EWMA, weight ARGV[5]). Then it picks as many jobs as the pool has room for.
// With ARGV[6] = 1 (a sweep of jobs whose end was never reported) a job being
// moved is left alone.
//
//	ARGV[2] job id   ARGV[3] slot-seconds   ARGV[4] cap   ARGV[5] alpha
//	ARGV[6] sweep
//
// Result: pairs job id, message picked.
var doneScript = redis.NewScript(commonLua + `
local id = ARGV[2]
if ARGV[6] == '1' and redis.call('HEXISTS', M, id) == 1 then return {} end
local now, actual = now_ms(), tonumber(ARGV[3])
local msg = redis.call('HGET', J, id)
if msg then
  local m = cjson.decode(msg)
  redis.call('HDEL', J, id)
  redis.call('ZREM', QP .. m.t, id)
  if redis.call('ZCARD', QP .. m.t) == 0 then deactivate(m.t) end
end
local info = redis.call('HGET', OI, id)
if info then
  local inf = cjson.decode(info)
  redis.call('ZREM', O, id)
  redis.call('HDEL', OI, id)
  if redis.call('HINCRBY', ON, inf.t, -1) <= 0 then redis.call('HDEL', ON, inf.t) end
  if actual > 0 then
    local d = (actual - inf.c) / weight(inf.t)
    if redis.call('ZSCORE', A, inf.t) then
      redis.call('ZINCRBY', A, d, inf.t)
    else
      redis.call('HINCRBYFLOAT', VT, inf.t, d)
    end
  end
end
redis.call('HDEL', M, id)
if actual > 0 then
  local a = tonumber(ARGV[5])
  local function ewma(f)
    local e = tonumber(redis.call('HGET', S, f))
    if not e then e = actual else e = e + a * (actual - e) end
    redis.call('HSET', S, f, e)
  end
  ewma('ewma')
  if info then ewma('ewma:' .. cjson.decode(info).t) end
  redis.call('HINCRBY', S, 'n', 1)
  -- The service rate: slot-seconds ended per second, over windows of 1-10 s
  -- (a longer one spans idle time: it starts again).
  local ws = tonumber(redis.call('HGET', S, 'win'))
  local acc = (tonumber(redis.call('HGET', S, 'acc')) or 0) + actual
  if not ws or now - ws > 10000 then
    redis.call('HSET', S, 'win', now, 'acc', actual)
  elseif now - ws >= 1000 then
    local r = acc / ((now - ws) / 1000)
    local old = tonumber(redis.call('HGET', S, 'rate'))
    if old then r = old + a * (r - old) end
    redis.call('HSET', S, 'rate', r, 'rate_at', now, 'win', now, 'acc', 0)
  else
    redis.call('HSET', S, 'acc', acc)
  end
end
return pick(free(tonumber(ARGV[4])), now, {})
`)

// pumpScript sends again the moves not confirmed within ARGV[3] ms (their
// mover died between the pick and the enqueue, or the confirmation was lost;
// the queue's enqueue is idempotent per job id), then picks as many jobs as
// the pool has room for.
//
//	ARGV[2] cap   ARGV[3] stale ms
//
// Result: pairs job id, message (re-sent moves first).
var pumpScript = redis.NewScript(commonLua + `
local now = now_ms()
local out = {}
local mv = redis.call('HGETALL', M)
for i = 1, #mv, 2 do
  local at, msg = string.match(mv[i + 1], '^(%d+)|(.*)$')
  if at and tonumber(at) < now - tonumber(ARGV[3]) then
    redis.call('HSET', M, mv[i], now .. '|' .. msg)
    out[#out + 1] = mv[i]
    out[#out + 1] = msg
  end
end
return pick(free(tonumber(ARGV[2])), now, out)
`)

// positionScript says how many waiting jobs fair share picks before job
// ARGV[2]: the jobs ahead of it in its own sub-queue, and of every other
// waiting tenant the jobs whose virtual start comes before its own (each
// pick of a tenant advances its virtual time by the tenant's mean run ÷ its
// weight), and the slot-seconds the pool serves before it, counting the
// other waiting tenants as waiting still when their jobs queued now run out
// (a tenant that keeps a pool busy keeps submitting; the count of jobs ahead
// takes only the jobs queued now). Limits are not simulated.
//
//	ARGV[2] job id
//
// Result: -1 when the job does not wait here, else {ahead, slot-seconds
// ahead (a string)}.
var positionScript = redis.NewScript(commonLua + `
local msg = redis.call('HGET', J, ARGV[2])
if not msg then return -1 end
local t = cjson.decode(msg).t
local r = redis.call('ZRANK', QP .. t, ARGV[2])
if not r then return -1 end
local c = test(t)
local vt = tonumber(redis.call('ZSCORE', A, t)) or clock()
local mine = vt + r * c / weight(t)
local ahead, work = r, r * c
local act = redis.call('ZRANGE', A, 0, -1, 'WITHSCORES')
for i = 1, #act, 2 do
  local u = act[i]
  if u ~= t then
    local cu = test(u)
    local vu, step = tonumber(act[i + 1]), cu / weight(u)
    local k = 0
    if vu < mine then k = math.ceil((mine - vu) / step) end
    if vu + k * step == mine and u < t then k = k + 1 end
    ahead = ahead + math.min(k, redis.call('ZCARD', QP .. u))
    work = work + k * cu
  end
end
return {ahead, tostring(work)}
`)
