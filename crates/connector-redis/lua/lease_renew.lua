-- Extends a lease, only if it is still the caller's (compare-and-expire).
--
-- KEYS[1]  lease key   {prefix}lease:{name}
-- ARGV[1]  expected value "<instance-id>:<token>"
-- ARGV[2]  new TTL in milliseconds
--
-- Returns 1 when renewed, 0 when the lease lapsed or belongs to someone else (the caller
-- must stop writing at once).
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
