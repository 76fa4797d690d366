-- lease_renew: compare-and-pexpire (SPEC §5; called every ttl/5).
--
-- KEYS[1]  batch:locks:user:{user}   string
-- ARGV[1]  token
-- ARGV[2]  TTL in ms
--
-- Returns: 1 when renewed, 0 when the lease is gone or held by another token.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
