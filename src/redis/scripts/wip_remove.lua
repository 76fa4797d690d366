-- wip_remove: drop a job id from work in progress without touching its hash,
-- fenced by the user's lease. For orphaned WIP entries whose hash is gone
-- (expired or deleted), which job_write refuses with JOB_NOT_FOUND.
--
-- KEYS[1]  batch:wip:user:{user}     list; the id is removed
-- KEYS[2]  batch:wip:users           set; the user is removed when KEYS[1] is empty
-- KEYS[3]  batch:locks:user:{user}   string; must hold ARGV[3]
-- ARGV[1]  job_id
-- ARGV[2]  user
-- ARGV[3]  lease token
--
-- Returns: the number of entries removed (integer).
-- Errors:  "LEASE_LOST <user>".
if redis.call('GET', KEYS[3]) ~= ARGV[3] then
  return redis.error_reply('LEASE_LOST ' .. ARGV[2])
end
local n = redis.call('LREM', KEYS[1], 0, ARGV[1])
if redis.call('LLEN', KEYS[1]) == 0 then
  redis.call('SREM', KEYS[2], ARGV[2])
end
return n
