-- job_cancel_pending: cancel a job if (and only if) it is still pending
-- (SPEC §3.5). Not fenced: a pending job has no running owner; atomic instead.
--
-- KEYS[1]  batch:jobs:{job_id}       hash; must exist and belong to ARGV[2]
-- KEYS[2]  batch:queue:{user}        list; the id is removed
-- KEYS[3]  batch:indexes:queue       set; the user is removed when KEYS[2] is empty
-- KEYS[4]  batch:wip:user:{user}     list; the id is removed (a dequeued job that
--                                    was never marked running)
-- KEYS[5]  batch:wip:users           set; the user is removed when KEYS[4] is empty
-- KEYS[6]  batchq:cancel_requested:{job_id}  string; set when the job is running
--                                    (the cancel mark: a runner that sees its
--                                    statement cancelled by another node's
--                                    pg_cancel_backend knows it for a user's cancel)
-- ARGV[1]  job_id
-- ARGV[2]  user
-- ARGV[3]  TTL in seconds (finished-jobs-ttl; <= 0: none)
-- ARGV[4..] field, value, ... written when cancelling (status cancelled, steps skipped, ...)
--
-- ARGV[ttl] also bounds the mark (at least a day: a job may run that long).
--
-- A cancelled job's id is PUBLISHed on batchq:jobs:final.
--
-- Returns: 1 when the job was pending and is now cancelled; {'running', node}
--          when it runs (only the mark is written); otherwise the job's current
--          status as a string (nothing written).
-- Errors:  "JOB_NOT_FOUND <job_id>" (no hash, or another user's job).
local cur = redis.call('HMGET', KEYS[1], 'user', 'status', 'node')
if cur[1] ~= ARGV[2] then
  return redis.error_reply('JOB_NOT_FOUND ' .. ARGV[1])
end
if cur[2] == 'running' then
  redis.call('SET', KEYS[6], '1', 'EX', math.max(tonumber(ARGV[3]), 86400))
  return {'running', cur[3] or ''}
end
if cur[2] ~= 'pending' then
  return cur[2] or ''
end
if (#ARGV - 3) % 2 ~= 0 then
  return redis.error_reply('BAD_ARGS job_cancel_pending needs field/value pairs')
end
if #ARGV > 3 then
  redis.call('HSET', KEYS[1], unpack(ARGV, 4))
end
redis.call('LREM', KEYS[2], 0, ARGV[1])
if redis.call('LLEN', KEYS[2]) == 0 then
  redis.call('SREM', KEYS[3], ARGV[2])
end
redis.call('LREM', KEYS[4], 0, ARGV[1])
if redis.call('LLEN', KEYS[4]) == 0 then
  redis.call('SREM', KEYS[5], ARGV[2])
end
local ttl = tonumber(ARGV[3])
if ttl > 0 then
  redis.call('EXPIRE', KEYS[1], ttl)
  -- Rows kept by the steps of an earlier, requeued run go with the hash.
  redis.call('EXPIRE', 'batchq:results:' .. ARGV[1], ttl)
end
-- Wakes the API's long-polls on this job (keys::jobs_final_channel).
redis.call('PUBLISH', 'batchq:jobs:final', ARGV[1])
return 1
