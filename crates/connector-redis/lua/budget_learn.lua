-- Takes in what a response said of a rate limit, for every replica sending under the
-- same credential. The same rule as connector_core::budget::Budget::learn: a later hold
-- replaces an earlier one (capped); a new window replaces the count, and within one window
-- the count only goes down (responses arrive out of order). The budget expires with its
-- reset or hold, at most the longest hold on, so one bad header cannot hold the fleet.
--
-- KEYS[1]  the budget   {prefix}budget:{<hmac>}
-- ARGV[1]  now (UNIX ms)
-- ARGV[2]  requests left, or ''
-- ARGV[3]  the window's end (UNIX ms), or ''
-- ARGV[4]  no request before (UNIX ms), or ''
-- ARGV[5]  the header that said so
-- ARGV[6]  the longest hold (ms)
-- ARGV[7]  the least burst
--
-- Returns 1.
local now = tonumber(ARGV[1])
local longest = tonumber(ARGV[6])
local b = redis.call('HMGET', KEYS[1], 'rem', 'reset', 'hold', 'ceil')
local stored_hold = tonumber(b[3])
local until_ms = tonumber(ARGV[4])
if until_ms then
  until_ms = math.min(until_ms, now + longest)
  if not stored_hold or stored_hold < until_ms then
    redis.call('HSET', KEYS[1], 'hold', until_ms, 'src', ARGV[5])
    stored_hold = until_ms
  end
end
local stored_reset = tonumber(b[2])
local left, reset = tonumber(ARGV[2]), tonumber(ARGV[3])
if left and reset then
  reset = math.min(reset, now + longest)
  local counted = tonumber(b[1])
  -- A window lasts until its reset: a reset given as seconds from now moves with
  -- rounding and latency, and must not start the count over.
  -- A window a configured rateLimit opened gives way to the response's own.
  local same = stored_reset and stored_reset > now and b[4] ~= '1'
  if same and counted then
    -- Within the window the count only goes down; fewer left than counted (other
    -- replicas spent them) slows the pace.
    if left < counted then
      redis.call('HSET', KEYS[1], 'rem', left,
        'interval', math.floor(math.max(stored_reset - now, 0) / math.max(left, 1)))
    end
  else
    stored_reset = reset
    local interval = math.floor(math.max(reset - now, 0) / math.max(left, 1))
    local burst = math.max(math.floor(left / 10), tonumber(ARGV[7]))
    redis.call('HSET', KEYS[1], 'rem', left, 'reset', reset, 'interval', interval,
      'ahead', interval * (burst - 1), 'tat', now, 'ceil', 0)
  end
end
local ends = math.max(stored_reset or 0, stored_hold or 0)
ends = math.min(math.max(ends, now + 1000), now + longest)
redis.call('PEXPIREAT', KEYS[1], ends)
return 1
