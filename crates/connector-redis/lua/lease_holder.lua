-- Reads who holds a lease and for how long, in one step (a GET then a separate PTTL could
-- straddle the expiry).
--
-- KEYS[1]  lease key   {prefix}lease:{name}
-- (no ARGV)
--
-- Returns nil when nobody holds the lease, else { "<instance-id>:<token>", pttl-ms }
-- where pttl-ms is -1 for a lease without a TTL (set by hand).
local value = redis.call('GET', KEYS[1])
if not value then
  return false
end
return { value, redis.call('PTTL', KEYS[1]) }
