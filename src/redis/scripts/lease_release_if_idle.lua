-- lease_release_if_idle: release the user lease only if the user's queue is
-- empty, so a job enqueued after the last dequeue is never stranded without a
-- lease holder (SPEC §2 user-queue: "releases the lease when the queue is empty").
--
-- KEYS[1]  batch:locks:user:{user}   string; must hold ARGV[1]
-- KEYS[2]  batch:queue:{user}        list
-- KEYS[3]  batch:indexes:queue       set; the user is removed on release
-- ARGV[1]  token
-- ARGV[2]  user
--
-- Returns: "released" (lease deleted) or "queue not empty" (nothing changed).
-- Errors:  "LEASE_LOST <user>" when the lock does not hold ARGV[1].
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return redis.error_reply('LEASE_LOST ' .. ARGV[2])
end
if redis.call('LLEN', KEYS[2]) > 0 then
  return 'queue not empty'
end
redis.call('DEL', KEYS[1])
redis.call('SREM', KEYS[3], ARGV[2])
return 'released'
