-- job_requeue: put a job back at the head of its user's queue ("run next"),
-- fenced by the user's lease (SPEC §7 drain, on-node-loss=requeue).
--
-- KEYS[1]  batch:jobs:{job_id}       hash; must exist and belong to ARGV[2]
-- KEYS[2]  batch:queue:{user}        list; the id is RPUSHed (taken next by RPOP)
-- KEYS[3]  batch:indexes:queue       set; the user is added
-- KEYS[4]  batch:wip:user:{user}     list; the id is removed
-- KEYS[5]  batch:wip:users           set; the user is removed when KEYS[4] is empty
-- KEYS[6]  batch:locks:user:{user}   string; must hold ARGV[3]
-- ARGV[1]  job_id
-- ARGV[2]  user
-- ARGV[3]  lease token
-- ARGV[4]  pub/sub channel that announces the user (batch:users)
-- ARGV[5]  n: how many field names follow to be deleted from KEYS[1] (HDEL)
-- ARGV[6..5+n] field names to delete (e.g. the interrupted step's started_at)
-- ARGV[6+n..] field, value, ... written into KEYS[1] (e.g. status pending, step statuses)
--
-- The job's TTL (if any) is removed; an id already in the queue is not duplicated.
-- Returns: the length of the user's queue after the push (integer).
-- Errors:  "LEASE_LOST <user>"; "JOB_NOT_FOUND <job_id>" (nothing changed either way).
if redis.call('GET', KEYS[6]) ~= ARGV[3] then
  return redis.error_reply('LEASE_LOST ' .. ARGV[2])
end
if redis.call('HGET', KEYS[1], 'user') ~= ARGV[2] then
  return redis.error_reply('JOB_NOT_FOUND ' .. ARGV[1])
end
local ndel = tonumber(ARGV[5])
if ndel == nil or (#ARGV - 5 - ndel) % 2 ~= 0 then
  return redis.error_reply('BAD_ARGS job_requeue needs a delete count and field/value pairs')
end
if ndel > 0 then
  redis.call('HDEL', KEYS[1], unpack(ARGV, 6, 5 + ndel))
end
if #ARGV > 5 + ndel then
  redis.call('HSET', KEYS[1], unpack(ARGV, 6 + ndel))
end
redis.call('PERSIST', KEYS[1])
redis.call('LREM', KEYS[4], 0, ARGV[1])
if redis.call('LLEN', KEYS[4]) == 0 then
  redis.call('SREM', KEYS[5], ARGV[2])
end
redis.call('LREM', KEYS[2], 0, ARGV[1])
local len = redis.call('RPUSH', KEYS[2], ARGV[1])
redis.call('SADD', KEYS[3], ARGV[2])
redis.call('PUBLISH', ARGV[4], ARGV[2])
return len
