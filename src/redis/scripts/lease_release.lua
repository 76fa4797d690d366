-- lease_release: compare-and-delete (SPEC §5).
--
-- KEYS[1]  batch:locks:user:{user}   string
-- ARGV[1]  token
--
-- Returns: 1 when deleted, 0 when the lease is gone or held by another token
--          (then nothing changes).
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
