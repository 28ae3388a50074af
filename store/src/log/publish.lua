-- Durable publish: one atomic step per operation, touching only keys of one
-- canvas (all under the canvas's hash tag, so it is legal on Redis Cluster;
-- an object's own keys are named from the prefixes below and share the tag).
--
-- KEYS[1] meta hash (seq, epoch)   KEYS[2] pixels (BITFIELD)   KEYS[3] log stream
-- KEYS[4] object ids (set)
-- ARGV[1] channel                  ARGV[2] bus frame header (MessagePack)
-- ARGV[3] event (MessagePack)
-- ARGV[4] stream length bound, 0 when a persister trims the stream
-- ARGV[5] backlog limit: refuse when this many events await the persister (0: no limit)
-- ARGV[6] change: '' none, 'u5' or 'u8' pixels (BITFIELD type), 'obj', 'clear'
-- ARGV[7] prefix of an object's hash   ARGV[8] prefix of an object's likers set
-- pixels: ARGV[9..] pairs of (cell index, palette index)
-- obj:    ARGV[9] op (create, update, move, delete, like)   ARGV[10] object id
--         ARGV[11] user   ARGV[12] '1' if the user is a gm
--         ARGV[13] the header for gm-only events (about a fog object)
--         ARGV[14] most objects on the canvas
--         create: ARGV[15..20] kind, x, y, w, h, owner, then (name, JSON) pairs
--         update: (name, JSON or '' to remove) pairs
--         move:   x, y, w or '', h or ''
--
-- An object's hash holds kind, x, y, w, h, owner, likes and p:<name> = JSON.
-- The object rules are store/src/objects/mod.rs's, which the in-memory log and
-- rebuilds use: fog exists only for gms; only the owner or a gm updates or
-- deletes; a user likes an object once.
--
-- Returns {seq, epoch}; {0, epoch} when the operation changes nothing (a
-- repeated like: nothing is published); or without changing anything the
-- error "UNINIT" (the canvas has no epoch: Redis is new or lost its data,
-- and the canvas must be initialised, or rebuilt from Postgres, first),
-- "BACKLOG <n>", "NOOBJ", "NOTOWNER", "FULL" or "EXISTS".

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

local mode = ARGV[6]
local header = ARGV[2]
local op, id, user, okey, lkey
if mode == 'obj' then
  op, id, user = ARGV[9], ARGV[10], ARGV[11]
  local gm = ARGV[12] == '1'
  okey = ARGV[7] .. id
  lkey = ARGV[8] .. id
  if op == 'create' then
    if redis.call('EXISTS', okey) == 1 then
      return redis.error_reply('EXISTS object id taken')
    end
    if redis.call('SCARD', KEYS[4]) >= tonumber(ARGV[14]) then
      return redis.error_reply('FULL the canvas holds its most objects')
    end
    if ARGV[15] == 'fog' then
      header = ARGV[13]
    end
  else
    local found = redis.call('HMGET', okey, 'kind', 'owner')
    local kind, owner = found[1], found[2]
    if not kind or (kind == 'fog' and not gm) then
      return redis.error_reply('NOOBJ no such object')
    end
    if kind == 'fog' then
      header = ARGV[13]
    end
    if (op == 'update' or op == 'delete') and not gm and owner ~= user then
      return redis.error_reply('NOTOWNER not the owner')
    end
    if op == 'like' and redis.call('SISMEMBER', lkey, user) == 1 then
      return {0, epoch}
    end
  end
end

local seq = redis.call('HINCRBY', KEYS[1], 'seq', 1)

if mode == 'u5' or mode == 'u8' then
  local args = {}
  for i = 9, #ARGV, 2 do
    args[#args + 1] = 'SET'
    args[#args + 1] = mode
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
elseif mode == 'obj' then
  if op == 'create' then
    local args = {'kind', ARGV[15], 'x', ARGV[16], 'y', ARGV[17], 'w', ARGV[18],
                  'h', ARGV[19], 'owner', ARGV[20], 'likes', 0}
    for i = 21, #ARGV, 2 do
      args[#args + 1] = 'p:' .. ARGV[i]
      args[#args + 1] = ARGV[i + 1]
    end
    redis.call('HSET', okey, unpack(args))
    redis.call('SADD', KEYS[4], id)
  elseif op == 'update' then
    for i = 15, #ARGV, 2 do
      if ARGV[i + 1] == '' then
        redis.call('HDEL', okey, 'p:' .. ARGV[i])
      else
        redis.call('HSET', okey, 'p:' .. ARGV[i], ARGV[i + 1])
      end
    end
  elseif op == 'move' then
    redis.call('HSET', okey, 'x', ARGV[15], 'y', ARGV[16])
    if ARGV[17] ~= '' then
      redis.call('HSET', okey, 'w', ARGV[17])
    end
    if ARGV[18] ~= '' then
      redis.call('HSET', okey, 'h', ARGV[18])
    end
  elseif op == 'delete' then
    redis.call('DEL', okey, lkey)
    redis.call('SREM', KEYS[4], id)
  elseif op == 'like' then
    redis.call('SADD', lkey, user)
    redis.call('HINCRBY', okey, 'likes', 1)
  end
elseif mode == 'clear' then
  redis.call('DEL', KEYS[2])
  for _, member in ipairs(redis.call('SMEMBERS', KEYS[4])) do
    redis.call('DEL', ARGV[7] .. member, ARGV[8] .. member)
  end
  redis.call('DEL', KEYS[4])
end

-- The sequence number as MessagePack uint64 (0xcf + 8 big-endian bytes),
-- between the frame header and the event; exact below 2^53.
local n = seq
local b = {}
for i = 8, 1, -1 do
  b[i] = n % 256
  n = math.floor(n / 256)
end
local payload = header .. string.char(0xcf, b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8]) .. ARGV[3]

if tonumber(ARGV[4]) > 0 then
  redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[4], seq .. '-0', 'p', payload)
else
  redis.call('XADD', KEYS[3], seq .. '-0', 'p', payload)
end
redis.call('PUBLISH', ARGV[1], payload)
return {seq, epoch}
