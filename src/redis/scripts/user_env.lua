-- user_env: what a job runner needs of its user before the first statement,
-- in one round trip (docs/round-trips.md): the per-user statement-timeout cap
-- and the role and password of the user's master key record.
--
-- KEYS[1]  limits:batch:{user}   hash, field timeout (ms)
-- KEYS[2]  rails:users:{user}    hash, field map_key
-- ARGV[1]  api_keys:{user}:      the prefix of the user's key records
--
-- Returns {timeout or false, map_key or false, database_role or false,
--          database_password or false}.
-- A wrong-typed key answers false for what it holds (never an error).
local function hget(key, field)
  if redis.call('TYPE', key).ok ~= 'hash' then
    return false
  end
  return redis.call('HGET', key, field)
end
local timeout = hget(KEYS[1], 'timeout')
local map_key = hget(KEYS[2], 'map_key')
local role, password = false, false
if map_key and map_key ~= '' then
  local rec = ARGV[1] .. map_key
  if redis.call('TYPE', rec).ok == 'hash' then
    local f = redis.call('HMGET', rec, 'database_role', 'database_password')
    role, password = f[1], f[2]
  end
end
return {timeout, map_key, role, password}
