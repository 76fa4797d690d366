-- results_begin: a kept step starts keeping rows, or starts again after a
-- retry (SPEC §11; docs/results.md, docs/redis-layout.md "Kept results").
-- Called by the runner once the step's start is recorded (so a fenced-out
-- runner never gets here); every later append of this run names `run`.
--
-- The step's list part is cut back to the end of the last earlier kept step:
-- rows a previous run of this step (or of a later one) left are dropped.
--
-- KEYS[1]  batch:jobs:{job_id}       hash: must be running; gets the field
--                                    results:{step} (meta JSON) and loses
--                                    results:{step}:columns
-- KEYS[2]  batchq:results:{job_id}   list: stored rows of every kept step, in
--                                    step order
-- ARGV[1]  run id (random, this run of this step)
-- ARGV[2]  step index, from 0
--
-- Returns: {start, bytes}: the step's first row in KEYS[2] and the bytes
--          earlier steps keep. Errors: "NOT_RUNNING <status>".
local status = redis.call('HGET', KEYS[1], 'status')
if status ~= 'running' then
  return redis.error_reply('NOT_RUNNING ' .. (status or ''))
end
local step = tonumber(ARGV[2])
local stop, bytes = 0, 0
if step > 0 then
  local fields = {}
  for j = 0, step - 1 do
    fields[#fields + 1] = 'results:' .. j
  end
  for _, m in ipairs(redis.call('HMGET', KEYS[1], unpack(fields))) do
    if m then
      local t = cjson.decode(m)
      stop = t.start + t.rows
      bytes = bytes + t.bytes
    end
  end
end
if stop == 0 then
  redis.call('DEL', KEYS[2])
else
  redis.call('LTRIM', KEYS[2], 0, stop - 1)
end
redis.call('HSET', KEYS[1], 'results:' .. step,
           cjson.encode({run = ARGV[1], start = stop, rows = 0, bytes = 0,
                         truncated = false, finished = false}))
redis.call('HDEL', KEYS[1], 'results:' .. step .. ':columns')
return {stop, bytes}
