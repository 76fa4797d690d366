-- job_create: store a new job and put it in its user's queue, atomically
-- (SPEC §4: create = hash + queue-limit check + push + index + publish).
--
-- KEYS[1]  batch:jobs:{job_id}     hash; must not exist yet
-- KEYS[2]  batch:queue:{user}      list; the id is LPUSHed (the next job is RPOPed)
-- KEYS[3]  batch:indexes:queue     set of users with queued jobs
-- ARGV[1]  job_id
-- ARGV[2]  user
-- ARGV[3]  max queued jobs per user (<= 0: no limit)
-- ARGV[4]  pub/sub channel that announces the user (batch:users)
-- ARGV[5..] field, value, field, value, ... written into KEYS[1] (at least one pair)
--
-- Returns: the length of the user's queue after the push (integer).
-- Errors:  "JOB_EXISTS <job_id>" when KEYS[1] already exists (nothing written);
--          "QUEUE_FULL <max>" when the queue already holds max ids (nothing written);
--          "BAD_ARGS ..." when the field list is empty or odd.
if #ARGV < 6 or (#ARGV - 4) % 2 ~= 0 then
  return redis.error_reply('BAD_ARGS job_create needs field/value pairs')
end
if redis.call('EXISTS', KEYS[1]) == 1 then
  return redis.error_reply('JOB_EXISTS ' .. ARGV[1])
end
local max = tonumber(ARGV[3])
if max > 0 and redis.call('LLEN', KEYS[2]) >= max then
  return redis.error_reply('QUEUE_FULL ' .. ARGV[3])
end
redis.call('HSET', KEYS[1], unpack(ARGV, 5))
local len = redis.call('LPUSH', KEYS[2], ARGV[1])
redis.call('SADD', KEYS[3], ARGV[2])
redis.call('PUBLISH', ARGV[4], ARGV[2])
return len
