-- capacity_acquire: take one of `capacity` statement slots of a database host,
-- cluster-wide (SPEC §5). Slots are members of a sorted set scored by their
-- expiry time in ms on Redis' own clock (TIME), so all nodes share one clock.
-- Re-acquiring a slot token one already holds succeeds and extends it.
--
-- KEYS[1]  batch:capacity:{host}     sorted set: slot token -> expiry (ms since epoch)
-- ARGV[1]  capacity (max concurrent slots)
-- ARGV[2]  slot token
-- ARGV[3]  slot TTL in ms
--
-- Expired members are pruned first. The key itself expires with its last slot.
-- Returns: 1 when the slot is held, 0 when the host is at capacity.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', string.format('%.0f', now))
if not redis.call('ZSCORE', KEYS[1], ARGV[2]) then
  if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then
    return 0
  end
end
redis.call('ZADD', KEYS[1], string.format('%.0f', now + tonumber(ARGV[3])), ARGV[2])
local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
redis.call('PEXPIREAT', KEYS[1], string.format('%.0f', tonumber(last[2]) + 1))
return 1
