-- job_create: store a new job and put it in its user's queue, atomically
-- (SPEC §4: create = hash + queue-limit check + push + index + publish), index
-- it for the user's job list, and honour an Idempotency-Key (SPEC §8).
--
-- KEYS[1]  batch:jobs:{job_id}          hash; must not exist yet
-- KEYS[2]  batch:queue:{user}           list; the id is LPUSHed (the next job is RPOPed)
-- KEYS[3]  batch:indexes:queue          set of users with queued jobs
-- KEYS[4]  batch:indexes:jobs:{user}    sorted set (all scores 0, read BYLEX): the
--                                       user's jobs for GET .../sql/job
-- KEYS[5]  (optional) batch:idempotency:{user}:{key}   string: the job id this
--                                       Idempotency-Key created
-- ARGV[1]  job_id
-- ARGV[2]  user
-- ARGV[3]  max queued jobs per user (<= 0: no limit)
-- ARGV[4]  pub/sub channel that announces the user (batch:users)
-- ARGV[5]  the job's creation time, ms since the epoch: its place in KEYS[4]
-- ARGV[6]  job key prefix ("batch:jobs:"), to prune index entries whose job expired
-- ARGV[7]  TTL in seconds of KEYS[5] (ignored without KEYS[5])
-- ARGV[8..] field, value, field, value, ... written into KEYS[1] (at least one pair)
--
-- The job's member in KEYS[4] is "<order, 15 digits>:<job_id>" with order =
-- ARGV[5], or the newest member's order + 1 when that is not greater: members
-- then sort exactly in creation order, even within one millisecond or when
-- the API nodes' clocks differ.
-- With KEYS[5] set and present: nothing is written, and the answer is
-- {original job_id, HGETALL of its hash} (the hash is empty when it expired).
-- Each create also looks at up to 3 random members of KEYS[4] and removes those
-- whose hash is gone (finished jobs expire), which keeps the index near the
-- number of live jobs without a sweep.
--
-- Returns: the length of the user's queue after the push (integer), or the
--          array above for a repeated Idempotency-Key.
-- Errors:  "JOB_EXISTS <job_id>" when KEYS[1] already exists (nothing written);
--          "QUEUE_FULL <max>" when the queue already holds max ids (nothing written);
--          "BAD_ARGS ..." when the field list is empty or odd.
if #ARGV < 9 or (#ARGV - 7) % 2 ~= 0 or #KEYS < 4 then
  return redis.error_reply('BAD_ARGS job_create needs 4 or 5 keys and field/value pairs')
end
if #KEYS >= 5 then
  local prior = redis.call('GET', KEYS[5])
  if prior then
    return {prior, redis.call('HGETALL', ARGV[6] .. prior)}
  end
end
if redis.call('EXISTS', KEYS[1]) == 1 then
  return redis.error_reply('JOB_EXISTS ' .. ARGV[1])
end
local max = tonumber(ARGV[3])
if max > 0 and redis.call('LLEN', KEYS[2]) >= max then
  return redis.error_reply('QUEUE_FULL ' .. ARGV[3])
end
redis.call('HSET', KEYS[1], unpack(ARGV, 8))
local len = redis.call('LPUSH', KEYS[2], ARGV[1])
redis.call('SADD', KEYS[3], ARGV[2])
redis.call('PUBLISH', ARGV[4], ARGV[2])
for _, member in ipairs(redis.call('ZRANDMEMBER', KEYS[4], 3)) do
  if redis.call('EXISTS', ARGV[6] .. string.sub(member, 17)) == 0 then
    redis.call('ZREM', KEYS[4], member)
  end
end
local order = tonumber(ARGV[5])
local newest = redis.call('ZRANGE', KEYS[4], '+', '-', 'BYLEX', 'REV', 'LIMIT', 0, 1)[1]
if newest then
  local last = tonumber(string.sub(newest, 1, 15))
  if last and last >= order then
    order = last + 1
  end
end
redis.call('ZADD', KEYS[4], 0, string.format('%015d', order) .. ':' .. ARGV[1])
if #KEYS >= 5 then
  redis.call('SET', KEYS[5], ARGV[1], 'EX', tonumber(ARGV[7]))
end
return len
