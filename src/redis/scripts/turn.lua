-- turn: one step of a user's turn on a worker node (SPEC §4, §5, §7;
-- docs/redis-layout.md "Turns"). Every job-state write of a worker and every
-- change of a user's lease and capacity slot on the job path is this one
-- script, in two optional parts that run atomically together:
--
--   1. WRITE one job (ARGV[9] not ""): fenced by the lease and a
--      compare-and-set on the job's status AND its `claim` (the lease token of
--      the turn that claimed it). kind "progress" sets fields (a step started
--      or ended, the job stays running); "final" also sets the TTL (of the
--      hash and of its kept results, batchq:results:{id}), takes
--      the id out of work in progress and PUBLISHes it on batchq:jobs:final; "requeue" writes the job back to
--      pending at the head of its queue ("run next") and out of work in
--      progress. Every write sets claim := this turn's token. A write whose
--      status changes (final, requeue) and that finds the job already in the
--      target status under this very token is a RETRY of a write that landed
--      (its reply was lost): it changes nothing and reports "applied".
--   2. TURN (ARGV[8]): "next" takes (or refreshes) the user's lease and one
--      capacity slot of the user's database host, settles the user's work in
--      progress and claims the next pending job; "release" gives lease and
--      slot back and, when the queue still holds jobs, publishes the user
--      AFTER the release so another node can take it at once; "none" does
--      neither.
--
-- "next" in detail. Nothing queued and nothing in progress: the user leaves
-- the queue index, nothing is taken -> {"empty"}. Lease held by another
-- token (but the inherited one) -> {"busy"}. Host at capacity -> lease given back if this call held
-- it -> {"full"}. Then work in progress, oldest first: an id without hash or
-- with a final status is dropped; a pending one goes back to the queue head;
-- a running one claimed by THIS token is this turn's own job whose claim
-- reply was lost -> {"job", id, hash} again (so a retry never skips a job);
-- running under another claim -> {"recover", id, hash, alive, ...}: orphans
-- the caller must settle (lease and slot held) before any later job runs;
-- `alive` is 1 when the node named in the job's `node` field is still
-- registered (batch:nodes:{node}), so its own unsettled state may come. Else
-- the next pending id is popped (ids no longer pending are dropped), the
-- claim fields and claim := token are written, the id enters work in
-- progress -> {"job", id, hash}. Queue empty after all: lease and slot given
-- back, the user leaves the index -> {"empty"}.
--
-- KEYS[1]  batch:locks:user:{user}   string: the lease (holder's token)
-- KEYS[2]  batch:capacity:{host}     sorted set: slot token -> expiry ms (Redis TIME)
-- KEYS[3]  batch:queue:{user}        list: LPUSH new, RPOP next, RPUSH "run next"
-- KEYS[4]  batch:indexes:queue       set of users with queued jobs
-- KEYS[5]  batch:wip:user:{user}     list: work in progress (LPUSH on claim)
-- KEYS[6]  batch:wip:users           set of users with work in progress
-- ARGV[1]  user                      ARGV[2]  lease token (this turn)
-- ARGV[3]  lease and slot TTL, ms    ARGV[4]  host capacity (slots)
-- ARGV[5]  slot token                ARGV[6]  job key prefix ("batch:jobs:")
-- ARGV[7]  channel announcing users (batch:users)
-- ARGV[8]  turn part: "none" | "next" | "release"
-- ARGV[9]  job id to write, "" for no write
-- ARGV[10] its expected status       ARGV[11] its expected claim ("" = none stored)
-- ARGV[12] status written            ARGV[13] "progress" | "final" | "requeue"
-- ARGV[14] TTL in seconds of a final job (<= 0: none)
-- ARGV[15] token this turn inherits the lease from ("" = none): the token of
--          the same node's previous turn of this user, which was fenced and
--          has ended; "next" takes a lease still held by it as if it were free
-- ARGV[16] node registry key prefix ("batch:nodes:")
-- ARGV[17] m: count of claim items that follow (field, value, ...; for "next")
-- ARGV[18 .. 17+m]                   claim fields (status running, node, updated_at)
-- ARGV[18+m] n: count of field names to delete from the written job (HDEL)
-- then n names, then field, value, ... to set on the written job
--
-- Returns {write, turn...}: write = "written" | "applied" | "none"; turn =
--   "none" | "empty" | "busy" | "full" | "job", id, hash | "recover", id, hash, alive, ... |
--   "released", queue length.
-- Errors (nothing changed): "LEASE_LOST <user>", "JOB_NOT_FOUND <job_id>",
--   "STATUS_CHANGED <status>" (status or claim differ), "BAD_ARGS ...".
-- Job keys are built from ARGV[6] (one Redis, no Redis Cluster).
local user, token = ARGV[1], ARGV[2]
local ttl, capacity = tonumber(ARGV[3]), tonumber(ARGV[4])
local slot, prefix, channel, part = ARGV[5], ARGV[6], ARGV[7], ARGV[8]
local inherit = ARGV[15]
local node_prefix = ARGV[16]
local m = tonumber(ARGV[17])
if not ttl or not capacity or not m or m % 2 ~= 0 then
  return redis.error_reply('BAD_ARGS turn needs numeric ttl, capacity and claim count')
end
local n = tonumber(ARGV[18 + m])
if not n or (#ARGV - 18 - m - n) % 2 ~= 0 then
  return redis.error_reply('BAD_ARGS turn needs a delete count and field/value pairs')
end
local final_statuses = {done = true, failed = true, cancelled = true, unknown = true}

local function leave_wip(id)
  redis.call('LREM', KEYS[5], 0, id)
  if redis.call('LLEN', KEYS[5]) == 0 then
    redis.call('SREM', KEYS[6], user)
  end
end

local function to_queue_head(id)
  redis.call('LREM', KEYS[3], 0, id)
  redis.call('RPUSH', KEYS[3], id)
  redis.call('SADD', KEYS[4], user)
end

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function give_back()
  if redis.call('GET', KEYS[1]) == token then
    redis.call('DEL', KEYS[1])
  end
  redis.call('ZREM', KEYS[2], slot)
end

-- 1. the write -------------------------------------------------------------
local written = 'none'
local job_id = ARGV[9]
if job_id ~= '' then
  local key = prefix .. job_id
  local expected, expected_claim, to, kind = ARGV[10], ARGV[11], ARGV[12], ARGV[13]
  local cur = redis.call('HMGET', key, 'user', 'status', 'claim')
  if cur[1] ~= user then
    return redis.error_reply('JOB_NOT_FOUND ' .. job_id)
  end
  local claim = cur[3] or ''
  if to ~= expected and cur[2] == to and claim == token then
    written = 'applied'
  else
    if redis.call('GET', KEYS[1]) ~= token then
      return redis.error_reply('LEASE_LOST ' .. user)
    end
    if cur[2] ~= expected or claim ~= expected_claim then
      return redis.error_reply('STATUS_CHANGED ' .. (cur[2] or ''))
    end
    local first = 19 + m
    if n > 0 then
      redis.call('HDEL', key, unpack(ARGV, first, first + n - 1))
    end
    if #ARGV >= first + n then
      redis.call('HSET', key, unpack(ARGV, first + n))
    end
    redis.call('HSET', key, 'claim', token)
    if kind == 'final' then
      -- Wakes the API's long-polls on this job (keys::jobs_final_channel).
      redis.call('PUBLISH', 'batchq:jobs:final', job_id)
      local secs = tonumber(ARGV[14])
      if secs and secs > 0 then
        redis.call('EXPIRE', key, secs)
        -- Kept results never outlive the job's hash (docs/results.md).
        redis.call('EXPIRE', 'batchq:results:' .. job_id, secs)
      end
      leave_wip(job_id)
    elseif kind == 'requeue' then
      redis.call('PERSIST', key)
      leave_wip(job_id)
      to_queue_head(job_id)
    end
    written = 'written'
  end
end

-- 2. the turn --------------------------------------------------------------
if part == 'release' then
  give_back()
  local len = redis.call('LLEN', KEYS[3])
  if len > 0 then
    redis.call('PUBLISH', channel, user)
  end
  return {written, 'released', len}
end
if part ~= 'next' then
  return {written, 'none'}
end

local holder = redis.call('GET', KEYS[1])
if holder and inherit ~= '' and holder == inherit then
  redis.call('DEL', KEYS[1]) -- this node's own fenced, ended turn: taken over
  holder = false
end
if holder ~= token then
  if redis.call('LLEN', KEYS[3]) == 0 and redis.call('LLEN', KEYS[5]) == 0 then
    redis.call('SREM', KEYS[4], user)
    return {written, 'empty'}
  end
  if holder then
    return {written, 'busy'}
  end
end
local now = now_ms()
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', string.format('%.0f', now))
if not redis.call('ZSCORE', KEYS[2], slot) and redis.call('ZCARD', KEYS[2]) >= capacity then
  if holder == token then
    redis.call('DEL', KEYS[1])
  end
  return {written, 'full'}
end
redis.call('SET', KEYS[1], token, 'PX', ttl)
redis.call('ZADD', KEYS[2], string.format('%.0f', now + ttl), slot)
local last = redis.call('ZRANGE', KEYS[2], -1, -1, 'WITHSCORES')
redis.call('PEXPIREAT', KEYS[2], string.format('%.0f', tonumber(last[2]) + 1))

-- The claim of a simple job (one statement) starts its step too, as the
-- runner's first progress write would (job::begin: step_status running,
-- step_started_at = the claim's updated_at, no step_ended_at): the runner
-- then finds nothing to write and saves a round trip. Simple: `shape` says
-- so, or (CARTO's records) `query` is no JSON array or object, the test
-- job::decode makes.
local function start_simple_step(key)
  local f = redis.call('HMGET', key, 'shape', 'query')
  if f[1] then
    if f[1] ~= 'simple' then
      return
    end
  elseif not f[2] or string.find(f[2], '^[ \t\r\n]*[%[{]') then
    return
  end
  for i = 18, 17 + m, 2 do
    if ARGV[i] == 'updated_at' then
      redis.call('HSET', key, 'step_status', 'running', 'step_started_at', ARGV[i + 1])
      redis.call('HDEL', key, 'step_ended_at')
      return
    end
  end
end

local orphans = {'recover'}
local wip = redis.call('LRANGE', KEYS[5], 0, -1)
for i = #wip, 1, -1 do
  local id = wip[i]
  local key = prefix .. id
  local cur = redis.call('HMGET', key, 'status', 'claim', 'user')
  if not cur[1] or final_statuses[cur[1]] or cur[3] ~= user then
    leave_wip(id)
  elseif cur[1] == 'pending' then
    leave_wip(id)
    to_queue_head(id)
  elseif cur[1] == 'running' and (cur[2] or '') == token then
    if #orphans == 1 then
      return {written, 'job', id, redis.call('HGETALL', key)}
    end
  else
    orphans[#orphans + 1] = id
    orphans[#orphans + 1] = redis.call('HGETALL', key)
    local owner = redis.call('HGET', key, 'node')
    orphans[#orphans + 1] = (owner and redis.call('EXISTS', node_prefix .. owner)) or 0
  end
end
if #orphans > 1 then
  local out = {written}
  for _, x in ipairs(orphans) do
    out[#out + 1] = x
  end
  return out
end

while true do
  local id = redis.call('RPOP', KEYS[3])
  if not id then
    break
  end
  local key = prefix .. id
  if redis.call('HGET', key, 'status') == 'pending' then
    if m > 0 then
      redis.call('HSET', key, unpack(ARGV, 18, 17 + m))
    end
    start_simple_step(key)
    redis.call('HSET', key, 'claim', token)
    redis.call('LPUSH', KEYS[5], id)
    redis.call('SADD', KEYS[6], user)
    return {written, 'job', id, redis.call('HGETALL', key)}
  end
end
redis.call('SREM', KEYS[4], user)
give_back()
return {written, 'empty'}
