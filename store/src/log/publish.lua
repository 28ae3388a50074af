-- Durable publish: one atomic step per operation, touching only keys of one
-- canvas (all under the canvas's hash tag, so it is legal on Redis Cluster;
-- an object's own keys are named from the prefixes below and share the tag).
--
-- KEYS[1] meta hash (seq, epoch)   KEYS[2] pixels (BITFIELD)   KEYS[3] log stream
-- KEYS[4] object ids (set)
-- KEYS[5] operation keys (hash: user 0x1f key -> 'seq object')
-- KEYS[6] operation key expiries (sorted set: user 0x1f key by expiry, ms)
-- ARGV[1] channel                  ARGV[2] bus frame header (MessagePack)
-- ARGV[3] event (MessagePack)
-- ARGV[4] stream length bound, 0 when a persister trims the stream
-- ARGV[5] backlog limit: refuse when this many events await the persister (0: no limit)
-- ARGV[6] change: '' none, 'u5' or 'u8' pixels (BITFIELD type), 'obj', 'clear'
-- ARGV[7] prefix of an object's hash   ARGV[8] prefix of an object's likers set
-- ARGV[9] the operation's key (user 0x1f key), '' for none
-- ARGV[10] how long a key is remembered, ms
-- pixels: ARGV[11..] pairs of (cell index, palette index)
-- obj:    ARGV[11] op (create, update, move, delete, like)   ARGV[12] object id
--         ARGV[13] user   ARGV[14] '1' if the user is a gm
--         ARGV[15] the header for gm-only events (about a fog object)
--         ARGV[16] most objects on the canvas
--         create: ARGV[17..22] kind, x, y, w, h, owner, then (name, JSON) pairs
--         update: (name, JSON or '' to remove) pairs
--         move:   x, y, w or '', h or ''
--
-- An object's hash holds kind, x, y, w, h, owner, likes and p:<name> = JSON.
-- The object rules are store/src/objects/mod.rs's, which the in-memory log and
-- rebuilds use: fog exists only for gms; only the owner or a gm updates or
-- deletes; a user likes an object once.
--
-- A keyed operation whose key was used within the window is not applied
-- again: it returns {seq, epoch, '=' .. object} of the first one (object:
-- the id a create made, else ''), before any other check.
--
-- Returns {seq, epoch, ''}; {0, epoch, ''} when the operation changes nothing (a
-- repeated like: nothing is published); or without changing anything the
-- error "UNINIT" (the canvas has no epoch: Redis is new or lost its data,
-- and the canvas must be initialised, or rebuilt from Postgres, first),
-- "BACKLOG <n>", "NOOBJ", "NOTOWNER", "FULL" or "EXISTS".

local epoch = redis.call('HGET', KEYS[1], 'epoch')
if not epoch then
  return redis.error_reply('UNINIT canvas has no epoch')
end

local opkey = ARGV[9]
local now
if opkey ~= '' then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  -- Forget a few expired keys per call: the set never holds more than a
  -- window's worth, and both keys expire when the canvas goes quiet.
  local old = redis.call('ZRANGEBYSCORE', KEYS[6], '-inf', now, 'LIMIT', 0, 16)
  if #old > 0 then
    redis.call('HDEL', KEYS[5], unpack(old))
    redis.call('ZREM', KEYS[6], unpack(old))
  end
  local until_ms = tonumber(redis.call('ZSCORE', KEYS[6], opkey))
  if until_ms and until_ms > now then
    local first = redis.call('HGET', KEYS[5], opkey)
    if first then
      -- A write, so that a WAIT after this call also covers the first
      -- operation (replication is in order).
      redis.call('PEXPIRE', KEYS[5], ARGV[10])
      local s, o = string.match(first, '^(%d+) (.*)$')
      return {tonumber(s), epoch, '=' .. o}
    end
  end
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
  op, id, user = ARGV[11], ARGV[12], ARGV[13]
  local gm = ARGV[14] == '1'
  okey = ARGV[7] .. id
  lkey = ARGV[8] .. id
  if op == 'create' then
    if redis.call('EXISTS', okey) == 1 then
      return redis.error_reply('EXISTS object id taken')
    end
    if redis.call('SCARD', KEYS[4]) >= tonumber(ARGV[16]) then
      return redis.error_reply('FULL the canvas holds its most objects')
    end
    if ARGV[17] == 'fog' then
      header = ARGV[15]
    end
  else
    local found = redis.call('HMGET', okey, 'kind', 'owner')
    local kind, owner = found[1], found[2]
    if not kind or (kind == 'fog' and not gm) then
      return redis.error_reply('NOOBJ no such object')
    end
    if kind == 'fog' then
      header = ARGV[15]
    end
    if (op == 'update' or op == 'delete') and not gm and owner ~= user then
      return redis.error_reply('NOTOWNER not the owner')
    end
    if op == 'like' and redis.call('SISMEMBER', lkey, user) == 1 then
      return {0, epoch, ''}
    end
  end
end

local seq = redis.call('HINCRBY', KEYS[1], 'seq', 1)

if mode == 'u5' or mode == 'u8' then
  local args = {}
  for i = 11, #ARGV, 2 do
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
    local args = {'kind', ARGV[17], 'x', ARGV[18], 'y', ARGV[19], 'w', ARGV[20],
                  'h', ARGV[21], 'owner', ARGV[22], 'likes', 0}
    for i = 23, #ARGV, 2 do
      args[#args + 1] = 'p:' .. ARGV[i]
      args[#args + 1] = ARGV[i + 1]
    end
    redis.call('HSET', okey, unpack(args))
    redis.call('SADD', KEYS[4], id)
  elseif op == 'update' then
    for i = 17, #ARGV, 2 do
      if ARGV[i + 1] == '' then
        redis.call('HDEL', okey, 'p:' .. ARGV[i])
      else
        redis.call('HSET', okey, 'p:' .. ARGV[i], ARGV[i + 1])
      end
    end
  elseif op == 'move' then
    redis.call('HSET', okey, 'x', ARGV[17], 'y', ARGV[18])
    if ARGV[19] ~= '' then
      redis.call('HSET', okey, 'w', ARGV[19])
    end
    if ARGV[20] ~= '' then
      redis.call('HSET', okey, 'h', ARGV[20])
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
if opkey ~= '' then
  local window = tonumber(ARGV[10])
  redis.call('HSET', KEYS[5], opkey, seq .. ' ' .. (op == 'create' and id or ''))
  redis.call('ZADD', KEYS[6], now + window, opkey)
  redis.call('PEXPIRE', KEYS[5], window)
  redis.call('PEXPIRE', KEYS[6], window)
end
return {seq, epoch, ''}
