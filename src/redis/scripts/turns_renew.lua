-- turns_renew: renews every lease and capacity slot a node holds, in one round
-- trip per tick (SPEC §5; docs/redis-layout.md "Turns"). A lease is renewed
-- only while it still holds the node's token (compare-and-pexpire); a slot
-- whose lease was renewed is extended, and put back when it had been pruned
-- (the statement it counts is still running; after a Redis restart without
-- data the host may briefly count more than its capacity, see
-- docs/cluster.md).
--
-- KEYS     none (keys are built from the prefixes: one Redis, no Redis Cluster)
-- ARGV[1]  TTL in ms of leases and slots
-- ARGV[2]  lease key prefix ("batch:locks:user:")
-- ARGV[3]  capacity key prefix ("batch:capacity:")
-- ARGV[4..] quadruples: user, lease token, host, slot token ("" host: no slot)
--
-- Returns: one integer per quadruple, in order: 1 when the lease is still
-- this token's and was renewed, 0 when it is gone or held by another token
-- (the caller fences that user at once; its slot is left alone).
local ttl = tonumber(ARGV[1])
if not ttl or (#ARGV - 3) % 4 ~= 0 then
  return redis.error_reply('BAD_ARGS turns_renew needs a ttl and user/token/host/slot quadruples')
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local out = {}
for i = 4, #ARGV, 4 do
  local user, token, host, slot = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  local lock = ARGV[2] .. user
  if redis.call('GET', lock) == token then
    redis.call('PEXPIRE', lock, ttl)
    if host ~= '' then
      local cap = ARGV[3] .. host
      redis.call('ZADD', cap, string.format('%.0f', now + ttl), slot)
      local last = redis.call('ZRANGE', cap, -1, -1, 'WITHSCORES')
      redis.call('PEXPIREAT', cap, string.format('%.0f', tonumber(last[2]) + 1))
    end
    out[#out + 1] = 1
  else
    out[#out + 1] = 0
  end
end
return out
