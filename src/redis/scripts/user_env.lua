-- user_env: what a job runner needs of its user before the first statement,
-- in one round trip (docs/round-trips.md): the per-user statement-timeout cap,
-- the role and password of the user's master key record, and, for a job of
-- another role, that role's password through batchq's role index.
--
-- KEYS[1]  limits:batch:{user}      hash, field timeout (ms)
-- KEYS[2]  rails:users:{user}       hash, field map_key
-- KEYS[3]  batchq:role_keys:{user}  hash, role -> token of a key record
-- ARGV[1]  api_keys:{user}:         the prefix of the user's key records
-- ARGV[2]  the job's database role ("" when only the cap is wanted)
--
-- Returns {timeout or false, map_key or false, database_role or false,
--          database_password or false, password of ARGV[2] or false}.
-- A wrong-typed key answers false for what it holds (never an error).
local function hget(key, field)
  if redis.call('TYPE', key).ok ~= 'hash' then
    return false
  end
  return redis.call('HGET', key, field)
end
local function record(token)
  local rec = ARGV[1] .. token
  if redis.call('TYPE', rec).ok ~= 'hash' then
    return false, false
  end
  local f = redis.call('HMGET', rec, 'database_role', 'database_password')
  return f[1], f[2]
end
local timeout = hget(KEYS[1], 'timeout')
local map_key = hget(KEYS[2], 'map_key')
local role, password = false, false
if map_key and map_key ~= '' then
  role, password = record(map_key)
end
local wanted = false
if ARGV[2] ~= '' then
  if role == ARGV[2] then
    wanted = password
  else
    local token = hget(KEYS[3], ARGV[2])
    if token and token ~= '' then
      local r, p = record(token)
      if r == ARGV[2] then
        wanted = p
      end
    end
  end
end
return {timeout, map_key, role, password, wanted}
