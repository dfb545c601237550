-- Marks a worker instance alive and counts the live ones, on the server's clock so that
-- hosts with skewed clocks agree on who has lapsed.
--
-- KEYS[1]  live workers   {prefix}workers:<group>   (sorted set: member = instance id,
--                                            score = expiry in ms on the server clock)
-- ARGV[1]  instance id
-- ARGV[2]  TTL in milliseconds
--
-- Returns the number of live instances, this one included.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]) * 2)
return redis.call('ZCARD', KEYS[1])
