-- capacity_renew: extend a held DB-host slot (SPEC §5). Fails when the slot
-- already expired and was pruned (the holder must stop or re-acquire).
--
-- KEYS[1]  batch:capacity:{host}     sorted set: slot token -> expiry (ms, Redis TIME)
-- ARGV[1]  slot token
-- ARGV[2]  slot TTL in ms
--
-- Returns: 1 when extended, 0 when the slot is not held (expired or released).
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', string.format('%.0f', now))
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) then
  return 0
end
redis.call('ZADD', KEYS[1], 'XX', string.format('%.0f', now + tonumber(ARGV[2])), ARGV[1])
local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
redis.call('PEXPIREAT', KEYS[1], string.format('%.0f', tonumber(last[2]) + 1))
return 1
