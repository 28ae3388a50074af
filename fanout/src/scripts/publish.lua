-- Durable publish: one atomic step per operation, touching only keys of one
-- canvas (all under the canvas's hash tag, so it is legal on Redis Cluster).
--
-- KEYS[1] meta hash (seq, epoch)   KEYS[2] pixels (BITFIELD)   KEYS[3] log stream
-- ARGV[1] channel                  ARGV[2] bus frame header (MessagePack)
-- ARGV[3] event (MessagePack)
-- ARGV[4] stream length bound, 0 when a persister trims the stream
-- ARGV[5] backlog limit: refuse when this many events await the persister (0: no limit)
-- ARGV[6] BITFIELD type ('u5', 'u8', or '' for no pixels)
-- ARGV[7..] pairs of (cell index, palette index)
--
-- Returns {seq, epoch}, or without changing anything the error
-- "UNINIT" (the canvas has no epoch: Redis is new or lost its data, and the
-- canvas must be initialised, or rebuilt from Postgres, first) or
-- "BACKLOG <n>".

local epoch = redis.call('HGET', KEYS[1], 'epoch')
if not epoch then
  return redis.error_reply('UNINIT canvas has no epoch')
end

local limit = tonumber(ARGV[5])
if limit > 0 then
  local state = redis.call('HMGET', KEYS[1], 'seq', 'persisted')
  local backlog = (tonumber(state[1]) or 0) - (tonumber(state[2]) or 0)
  if backlog >= limit then
    return redis.error_reply('BACKLOG ' .. backlog)
  end
end

local seq = redis.call('HINCRBY', KEYS[1], 'seq', 1)

if ARGV[6] ~= '' then
  local args = {}
  for i = 7, #ARGV, 2 do
    args[#args + 1] = 'SET'
    args[#args + 1] = ARGV[6]
    args[#args + 1] = '#' .. ARGV[i]
    args[#args + 1] = ARGV[i + 1]
    if #args >= 1000 then
      redis.call('BITFIELD', KEYS[2], unpack(args))
      args = {}
    end
  end
  if #args > 0 then
    redis.call('BITFIELD', KEYS[2], unpack(args))
  end
end

-- The sequence number as MessagePack uint64 (0xcf + 8 big-endian bytes),
-- between the frame header and the event; exact below 2^53.
local n = seq
local b = {}
for i = 8, 1, -1 do
  b[i] = n % 256
  n = math.floor(n / 256)
end
local payload = ARGV[2] .. string.char(0xcf, b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8]) .. ARGV[3]

if tonumber(ARGV[4]) > 0 then
  redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[4], seq .. '-0', 'p', payload)
else
  redis.call('XADD', KEYS[3], seq .. '-0', 'p', payload)
end
redis.call('PUBLISH', ARGV[1], payload)
return {seq, epoch}
