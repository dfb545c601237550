-- An operator's change to a connector's state (unfenced): a reset, or fields deleted and
-- set. Either way the state's write count advances, so the lease holder notices at its
-- next poll that its cached copy is stale, and reads state again.
--
-- KEYS[1]  state key   {prefix}connector:state:{name}, a hash
-- ARGV[1]  "reset" to delete every field first, "change" otherwise
-- ARGV[2]  the state layout this release writes (field h:format)
-- ARGV[3]  d: fields to delete
-- ARGV[4 .. 3+d]  the fields to delete
-- then    field, value pairs to set
--
-- Returns the new write count (field h:seq). A change to a state of a later layout is
-- refused (this release could misread what it changes); a reset starts over and may.
local seq = tonumber(redis.call('HGET', KEYS[1], 'h:seq') or '0') or 0
local format = tonumber(redis.call('HGET', KEYS[1], 'h:format') or '0') or 0
if ARGV[1] ~= 'reset' and format > tonumber(ARGV[2]) then
  return redis.error_reply('the state has layout ' .. format .. ', written by a later release; this release writes layout ' .. ARGV[2])
end
if ARGV[1] == 'reset' then
  redis.call('DEL', KEYS[1])
end
local d = tonumber(ARGV[3])
-- In slices: unpack() of a very large table overflows Lua's C stack.
local slice = 500
for first = 4, 3 + d, slice do
  redis.call('HDEL', KEYS[1], unpack(ARGV, first, math.min(first + slice, 4 + d) - 1))
end
for first = 4 + d, #ARGV, 2 * slice do
  redis.call('HSET', KEYS[1], unpack(ARGV, first, math.min(first + 2 * slice, #ARGV + 1) - 1))
end
redis.call('HSET', KEYS[1], 'h:seq', seq + 1, 'h:format', ARGV[2])
return seq + 1
