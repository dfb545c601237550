-- Takes one request from a shared rate budget, or says how long to wait first: the
-- remaining requests of the window spread over the time to its reset (GCRA, a burst let
-- through at once). The same rule as connector_core::budget::Budget::take.
--
-- KEYS[1]  the budget   {prefix}budget:{<hmac>}   (hash: rem, reset, hold, tat, interval,
--                                                   ahead, src)
-- ARGV[1]  now (UNIX ms)
-- ARGV[2]  the least burst
-- ARGV[3]  the API's published limit (requests per window), or ''
-- ARGV[4]  its window (ms), or ''
--
-- Returns the wait in ms; 0: the request goes, and is counted; -1: nothing is known of
-- this budget (no window, no hold, no published limit): the request goes. A budget
-- nothing was learned for is not written.
local now = tonumber(ARGV[1])
local b = redis.call('HMGET', KEYS[1], 'rem', 'reset', 'hold', 'tat', 'interval', 'ahead')
local hold = tonumber(b[3])
if hold and hold > now then
  return hold - now
end
local rem, reset = tonumber(b[1]), tonumber(b[2])
local ceiling, window = tonumber(ARGV[3]), tonumber(ARGV[4])
if ceiling and window and (not reset or reset <= now) then
  -- Nothing learned for the current window: the published limit opens one.
  rem, reset = ceiling, now + window
  local pace = math.floor(window / math.max(ceiling, 1))
  b[5] = pace
  b[6] = pace * (math.max(math.floor(ceiling / 10), tonumber(ARGV[2])) - 1)
  b[4] = now
  redis.call('HSET', KEYS[1], 'rem', rem, 'reset', reset, 'interval', b[5], 'ahead', b[6],
    'tat', now, 'ceil', 1)
  redis.call('PEXPIREAT', KEYS[1], reset)
end
if not rem or not reset or reset <= now then
  return -1
end
if rem <= 0 then
  return reset - now
end
local interval = tonumber(b[5]) or 0
if interval == 0 then
  interval = math.floor((reset - now) / rem)
end
local tat = math.max(tonumber(b[4]) or 0, now)
local allowed = tonumber(b[6]) or 0
if allowed == 0 then
  allowed = interval * (tonumber(ARGV[2]) - 1)
end
if tat - now > allowed then
  return tat - now - allowed
end
redis.call('HSET', KEYS[1], 'tat', tat + interval, 'rem', rem - 1)
return 0
