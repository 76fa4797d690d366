-- results_append: rows of a kept step, and what they change in its meta
-- (SPEC §11; docs/results.md). Fenced by the run: only the run whose
-- results_begin is the step's latest writes (an older run of a retried step
-- is refused), and only while the job runs.
--
-- KEYS[1]  batch:jobs:{job_id}       hash: results:{step}, results:{step}:columns
-- KEYS[2]  batchq:results:{job_id}   list of stored rows
-- ARGV[1]  run id (as given to results_begin)
-- ARGV[2]  step index
-- ARGV[3]  the result's columns as JSON ("" = unchanged)
-- ARGV[4]  "1": a new statement of the step's string begins its result: the
--          step's rows so far are dropped (a step keeps its last statement's)
-- ARGV[5]  bytes of the rows that follow (their stored form)
-- ARGV[6]  "1": rows were left out past the byte cap (stays set)
-- ARGV[7]  "1": the step's statement finished (its rows are all here)
-- ARGV[8..] stored rows, appended in order (at most a few thousand per call)
--
-- Returns: {rows, bytes} of the step so far. Errors: "NOT_RUNNING <status>",
--          "FENCED <step>" (another run of the step began, or none did).
local status = redis.call('HGET', KEYS[1], 'status')
if status ~= 'running' then
  return redis.error_reply('NOT_RUNNING ' .. (status or ''))
end
local field = 'results:' .. ARGV[2]
local m = redis.call('HGET', KEYS[1], field)
local t = m and cjson.decode(m)
if not t or t.run ~= ARGV[1] then
  return redis.error_reply('FENCED ' .. ARGV[2])
end
if ARGV[4] == '1' then
  if t.start == 0 then
    redis.call('DEL', KEYS[2])
  else
    redis.call('LTRIM', KEYS[2], 0, t.start - 1)
  end
  t.rows, t.bytes, t.truncated = 0, 0, false
end
if ARGV[3] ~= '' then
  redis.call('HSET', KEYS[1], field .. ':columns', ARGV[3])
end
if #ARGV >= 8 then
  redis.call('RPUSH', KEYS[2], unpack(ARGV, 8))
  t.rows = t.rows + (#ARGV - 7)
end
t.bytes = t.bytes + tonumber(ARGV[5])
if ARGV[6] == '1' then
  t.truncated = true
end
if ARGV[7] == '1' then
  t.finished = true
end
redis.call('HSET', KEYS[1], field, cjson.encode(t))
return {t.rows, t.bytes}
