-- job_write: a fenced job-state write, one per status change (SPEC §2 status
-- actor, §4, §5). On a final status it also sets the TTL and leaves WIP.
--
-- KEYS[1]  batch:jobs:{job_id}       hash; must exist and belong to ARGV[2]
-- KEYS[2]  batch:wip:user:{user}     list; the id is removed on a final status
-- KEYS[3]  batch:wip:users           set; the user is removed when KEYS[2] is empty
-- KEYS[4]  batch:locks:user:{user}   string; must hold ARGV[3]
-- ARGV[1]  job_id
-- ARGV[2]  user
-- ARGV[3]  lease token
-- ARGV[4]  expected current status ("" = do not check): a compare-and-set guard
-- ARGV[5]  "1" when the written status is final (done/failed/cancelled/unknown), else "0"
-- ARGV[6]  TTL in seconds applied on a final status (<= 0: none)
-- ARGV[7]  n: how many field names follow to be deleted from KEYS[1] (HDEL)
-- ARGV[8..7+n] field names to delete (optional fields the job no longer has)
-- ARGV[8+n..] field, value, ... written into KEYS[1]
--
-- Returns: 1.
-- Errors:  "LEASE_LOST <user>"; "JOB_NOT_FOUND <job_id>";
--          "STATUS_CHANGED <current status>" when ARGV[4] is set and differs.
--          Nothing is written on any error.
if redis.call('GET', KEYS[4]) ~= ARGV[3] then
  return redis.error_reply('LEASE_LOST ' .. ARGV[2])
end
local cur = redis.call('HMGET', KEYS[1], 'user', 'status')
if cur[1] ~= ARGV[2] then
  return redis.error_reply('JOB_NOT_FOUND ' .. ARGV[1])
end
if ARGV[4] ~= '' and cur[2] ~= ARGV[4] then
  return redis.error_reply('STATUS_CHANGED ' .. (cur[2] or ''))
end
local ndel = tonumber(ARGV[7])
if ndel == nil or (#ARGV - 7 - ndel) % 2 ~= 0 then
  return redis.error_reply('BAD_ARGS job_write needs a delete count and field/value pairs')
end
if ndel > 0 then
  redis.call('HDEL', KEYS[1], unpack(ARGV, 8, 7 + ndel))
end
if #ARGV > 7 + ndel then
  redis.call('HSET', KEYS[1], unpack(ARGV, 8 + ndel))
end
if ARGV[5] == '1' then
  local ttl = tonumber(ARGV[6])
  if ttl > 0 then
    redis.call('EXPIRE', KEYS[1], ttl)
  end
  redis.call('LREM', KEYS[2], 0, ARGV[1])
  if redis.call('LLEN', KEYS[2]) == 0 then
    redis.call('SREM', KEYS[3], ARGV[2])
  end
end
return 1
