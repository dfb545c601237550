-- The fenced, atomic commit of one chunk: stream entries plus the state that records them.
--
-- KEYS[1]  lease key   {prefix}lease:{name}, must hold ARGV[1]
-- KEYS[2]  state key   {prefix}connector:state:{name}, a hash
-- KEYS[3]  stream key  {prefix}<outputStream>; only read when n > 0 (the cluster path
--                      appends on its own, since the stream lives in another slot, and
--                      passes n = 0 without this key)
--
-- ARGV[1]  expected lease value "<instance-id>:<token>"
-- ARGV[2]  MAXLEN ~ threshold for XADD, or "" for an untrimmed stream
-- ARGV[3]  f: fields per entry
-- ARGV[4]  n: entries
-- ARGV[5]  h: state fields to set
-- ARGV[6]  d: state fields to delete
-- ARGV[7]  the state's write count the writer expects stored (field h:seq, 0 when absent)
-- ARGV[8]  the state layout this writer writes (field h:format)
-- ARGV[9 .. 8+f]   the f field names, in stream order (sent once, not per entry)
-- then n*f values  the entries' values, entry after entry
-- then 2*h         field, value pairs for HSET on the state hash
-- then d           fields for HDEL on the state hash (applied before the HSET)
--
-- Returns { 1, new write count } when committed; { 0, 0 } when fenced: the lease no
-- longer holds this token; { -1, stored write count } when rolled back: the state's write
-- count is not the expected one (Redis lost writes: a restart without persistence, a
-- FLUSHALL, a failover to a lagging replica). Fenced or rolled back, nothing was written.
--
-- Redis does not roll a script back when a command fails half-way, so every check that can
-- fail (fence, write count, key types) runs before the first write.
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return { 0, 0 }
end
local stored = tonumber(redis.call('HGET', KEYS[2], 'h:seq') or '0') or 0
if stored ~= tonumber(ARGV[7]) then
  return { -1, stored }
end

local maxlen = ARGV[2]
local f = tonumber(ARGV[3])
local n = tonumber(ARGV[4])
local h = tonumber(ARGV[5])
local d = tonumber(ARGV[6])

local state_type = redis.call('TYPE', KEYS[2]).ok
if state_type ~= 'hash' and state_type ~= 'none' then
  return redis.error_reply('state key ' .. KEYS[2] .. ' holds a ' .. state_type .. ', not a hash')
end
if n > 0 then
  local stream_type = redis.call('TYPE', KEYS[3]).ok
  if stream_type ~= 'stream' and stream_type ~= 'none' then
    return redis.error_reply('stream key ' .. KEYS[3] .. ' holds a ' .. stream_type .. ', not a stream')
  end
end

-- The six fields of a stream entry (connector, type, external_id, version, dedup_id,
-- signal) are spelled out in each XADD: building a table per entry and unpacking it cost
-- 10-15% of the commit (BENCHMARKS.md). The layout keeps f for the day the entry changes.
if n > 0 and f ~= 6 then
  return redis.error_reply('commit.lua writes six-field entries, got ' .. f)
end
local stream = KEYS[3]
local k1, k2, k3, k4, k5, k6 = ARGV[9], ARGV[10], ARGV[11], ARGV[12], ARGV[13], ARGV[14]
local values = 9 + f
local i = values
if maxlen == '' then
  for _ = 1, n do
    redis.call('XADD', stream, '*', k1, ARGV[i], k2, ARGV[i + 1], k3, ARGV[i + 2],
      k4, ARGV[i + 3], k5, ARGV[i + 4], k6, ARGV[i + 5])
    i = i + 6
  end
else
  for _ = 1, n do
    redis.call('XADD', stream, 'MAXLEN', '~', maxlen, '*', k1, ARGV[i], k2, ARGV[i + 1],
      k3, ARGV[i + 2], k4, ARGV[i + 3], k5, ARGV[i + 4], k6, ARGV[i + 5])
    i = i + 6
  end
end

-- HSET/HDEL in slices: unpack() of a very large table overflows Lua's C stack.
local slice = 500
local sets = values + n * f
local dels = sets + 2 * h
for first = 0, d - 1, slice do
  local last = math.min(first + slice, d) - 1
  redis.call('HDEL', KEYS[2], unpack(ARGV, dels + first, dels + last))
end
for first = 0, h - 1, slice do
  local last = math.min(first + slice, h) - 1
  redis.call('HSET', KEYS[2], unpack(ARGV, sets + 2 * first, sets + 2 * last + 1))
end
redis.call('HSET', KEYS[2], 'h:seq', stored + 1, 'h:format', ARGV[8])
return { 1, stored + 1 }
