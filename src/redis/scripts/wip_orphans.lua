-- wip_orphans: the users whose work in progress nobody owns (SPEC §7 crash
-- sweep): members of batch:wip:users with a non-empty batch:wip:user:{user}
-- list and no lease batch:locks:user:{user}. Read-only: the sweeping node then
-- takes each user's lease itself (lease_acquire) before touching any job.
-- The per-user keys are built from ARGV prefixes (one Redis, no cluster).
--
-- KEYS[1]  batch:wip:users           set of users with work in progress
-- ARGV[1]  "batch:locks:user:"       prefix of the user lease keys
-- ARGV[2]  "batch:wip:user:"         prefix of the per-user work-in-progress lists
--
-- Returns: array of user names (any order; empty when nothing is orphaned).
local out = {}
for _, user in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if redis.call('EXISTS', ARGV[1] .. user) == 0
     and redis.call('LLEN', ARGV[2] .. user) > 0 then
    out[#out + 1] = user
  end
end
return out
