-- job_list: one page of a user's jobs, newest first (SPEC §8 GET .../sql/job).
-- Walks the user's job index from a cursor, drops index entries whose job hash
-- expired, keeps the jobs whose status is wanted, and returns them with their
-- hashes and the cursor of the next page.
--
-- KEYS[1]  batch:indexes:jobs:{user}  sorted set, all scores 0; members
--                                     "<created ms, 15 digits>:<job_id>" (job_create)
-- ARGV[1]  job key prefix ("batch:jobs:")
-- ARGV[2]  page size (>= 1)
-- ARGV[3]  cursor: the member after which to continue ("" = from the newest)
-- ARGV[4]  budget: at most this many index entries are examined per call
-- ARGV[5..] statuses to keep (none: every status)
--
-- Returns: {next, id1, hash1, id2, hash2, ...} where each hash is the job's
--          HGETALL and `next` is the cursor of the following page, or "" when
--          the walk reached the oldest entry. A page holds fewer jobs than asked
--          only at the end, or when the budget ran out first (then `next` is
--          the last entry examined, so the following call goes on from there).
--          `next` is also "" when a full page was the last matching one.
-- Errors:  "BAD_ARGS ..." on a page size or budget that is not a positive number.
local limit = tonumber(ARGV[2])
local budget = tonumber(ARGV[4])
if not limit or limit < 1 or not budget or budget < 1 then
  return redis.error_reply('BAD_ARGS job_list needs a positive page size and budget')
end
local want = nil
if #ARGV >= 5 then
  want = {}
  for i = 5, #ARGV do
    want[ARGV[i]] = true
  end
end
local max = '+'
if ARGV[3] ~= '' then
  max = '(' .. ARGV[3]
end
local out = {''}
local found = 0
local examined = 0
local dead = {}
local last_returned = nil
local last_examined = nil
local next = ''
local offset = 0
local finished = false
while not finished do
  local page = redis.call('ZRANGE', KEYS[1], max, '-', 'BYLEX', 'REV', 'LIMIT', offset, 50)
  if #page == 0 then
    break
  end
  offset = offset + #page
  for _, member in ipairs(page) do
    local id = string.sub(member, 17)
    local status = redis.call('HGET', ARGV[1] .. id, 'status')
    if not status then
      dead[#dead + 1] = member
    elseif want == nil or want[status] then
      if found == limit then
        -- one more matching job exists: the next page starts after this page
        next = last_returned
        finished = true
        break
      end
      found = found + 1
      out[#out + 1] = id
      out[#out + 1] = redis.call('HGETALL', ARGV[1] .. id)
      last_returned = member
    end
    last_examined = member
    examined = examined + 1
    if examined >= budget then
      next = last_examined
      finished = true
      break
    end
  end
end
if #dead > 0 then
  redis.call('ZREM', KEYS[1], unpack(dead))
end
out[1] = next
return out
