-- capacity_release: give a DB-host slot back (SPEC §5).
--
-- KEYS[1]  batch:capacity:{host}     sorted set of slot tokens
-- ARGV[1]  slot token
--
-- Returns: 1 when the slot was held and is now free, 0 when it was not held.
return redis.call('ZREM', KEYS[1], ARGV[1])
