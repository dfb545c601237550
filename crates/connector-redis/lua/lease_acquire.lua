-- Takes a connector's lease if nobody holds it, with the next fencing token.
--
-- KEYS[1]  lease key   {prefix}lease:{name}, value "<instance-id>:<token>", with a PX TTL
-- KEYS[2]  fence key   {prefix}lease:{name}:fence, the token counter
-- ARGV[1]  instance id of the caller
-- ARGV[2]  lease TTL in milliseconds
--
-- Returns the new token (an integer), or nil when the lease is held by anyone.
--
-- The counter is only incremented for a successful acquisition, so tokens are strictly
-- increasing and every token was held by exactly one instance. Check, INCR and SET run as
-- one step: no other client can slip in between.
if redis.call('EXISTS', KEYS[1]) == 1 then
  return false
end
local token = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], ARGV[1] .. ':' .. token, 'NX', 'PX', ARGV[2])
return token
