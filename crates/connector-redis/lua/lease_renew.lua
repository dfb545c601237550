-- Extends a lease, only if it is still the caller's (compare-and-expire).
--
-- KEYS[1]  lease key   {prefix}lease:{name}
-- ARGV[1]  expected value "<instance-id>:<token>"
-- ARGV[2]  new TTL in milliseconds
--
-- Returns 1 when renewed, 0 when another instance holds it, -1 when nobody does (it lapsed,
-- or Redis lost it); on 0 and -1 the caller must stop writing at once.
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
if not holder then
  return -1
end
return 0
