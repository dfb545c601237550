-- Gives a lease up, only if it is still the caller's (compare-and-delete), so a slow
-- instance can never delete the lease its successor took.
--
-- KEYS[1]  lease key   {prefix}lease:{name}
-- ARGV[1]  expected value "<instance-id>:<token>"
--
-- Returns 1 when deleted, 0 when it was not the caller's (nothing changed).
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
