-- lease_acquire: take the user lease (SPEC §5): SET NX PX with a random token.
-- Re-acquiring a lease one already holds succeeds and refreshes its TTL.
--
-- KEYS[1]  batch:locks:user:{user}   string
-- ARGV[1]  token (random, one per holder)
-- ARGV[2]  TTL in ms
--
-- Returns: 1 when the caller now holds the lease, 0 when someone else holds it.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return 1
end
return 0
