-- job_dequeue: move the user's next pending job from its queue into work in
-- progress and return it, fenced by the user's lease (SPEC §4, §5).
--
-- KEYS[1]  batch:queue:{user}        list; the next job is RPOPed
-- KEYS[2]  batch:indexes:queue       set; the user is removed when the queue is empty
-- KEYS[3]  batch:wip:user:{user}     list; the dequeued id is LPUSHed
-- KEYS[4]  batch:wip:users           set; the user is added
-- KEYS[5]  batch:locks:user:{user}   string; must hold ARGV[2]
-- ARGV[1]  user
-- ARGV[2]  lease token
-- ARGV[3]  job key prefix ("batch:jobs:"; job keys are computed, not passed)
-- ARGV[4..] optional field, value, ... written into the dequeued job before it
--          is read (e.g. status running, started_at, node) so that it never sits
--          in work in progress as "pending"
--
-- Ids whose hash is gone or whose status is not "pending" (e.g. cancelled) are
-- popped and dropped. Returns nil when the queue is (now) empty, else
-- {job_id, {field, value, ...}} with the job's HGETALL after the write.
-- Errors:  "LEASE_LOST <user>" when the lock does not hold ARGV[2] (nothing changed).
if redis.call('GET', KEYS[5]) ~= ARGV[2] then
  return redis.error_reply('LEASE_LOST ' .. ARGV[1])
end
if #ARGV > 3 and (#ARGV - 3) % 2 ~= 0 then
  return redis.error_reply('BAD_ARGS job_dequeue needs field/value pairs')
end
while true do
  local id = redis.call('RPOP', KEYS[1])
  if not id then
    redis.call('SREM', KEYS[2], ARGV[1])
    return false
  end
  local key = ARGV[3] .. id
  if redis.call('HGET', key, 'status') == 'pending' then
    if #ARGV > 3 then
      redis.call('HSET', key, unpack(ARGV, 4))
    end
    redis.call('LPUSH', KEYS[3], id)
    redis.call('SADD', KEYS[4], ARGV[1])
    return {id, redis.call('HGETALL', key)}
  end
end
