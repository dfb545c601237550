-- Folds one poll into a connector's metrics hash, atomically, so instances recording at
-- the same time never lose an update to the running average.
--
-- KEYS[1]  metrics key  {prefix}metrics:connector:{name}
-- ARGV[1]  poll start, UNIX milliseconds
-- ARGV[2]  poll latency in milliseconds (decimal)
-- ARGV[3]  "1" for a successful poll, "0" for a failed one
-- ARGV[4]  items fetched (0 for a failed poll)
-- ARGV[5]  items published (0 for a failed poll)
--
-- Returns the new totalPolls.
--
-- Fields (the guide's): lastPollTime, lastSuccessTime, totalPolls, successfulPolls,
-- failedPolls, itemsFetched, itemsPublished, averageLatencyMs. Every counter is written on
-- the first poll, so the hash always has the full set except lastSuccessTime before the
-- first success.
local key = KEYS[1]
local total = tonumber(redis.call('HGET', key, 'totalPolls') or '0') or 0
local average = tonumber(redis.call('HGET', key, 'averageLatencyMs') or '0') or 0
local latency = tonumber(ARGV[2]) or 0
average = (average * total + latency) / (total + 1)
local ok = ARGV[3] == '1'

redis.call('HSET', key, 'lastPollTime', ARGV[1], 'averageLatencyMs', string.format('%.3f', average))
if ok then
  redis.call('HSET', key, 'lastSuccessTime', ARGV[1])
end
redis.call('HINCRBY', key, 'successfulPolls', ok and 1 or 0)
redis.call('HINCRBY', key, 'failedPolls', ok and 0 or 1)
redis.call('HINCRBY', key, 'itemsFetched', ok and ARGV[4] or 0)
redis.call('HINCRBY', key, 'itemsPublished', ok and ARGV[5] or 0)
return redis.call('HINCRBY', key, 'totalPolls', 1)
