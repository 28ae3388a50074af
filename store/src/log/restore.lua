-- Initialises a canvas that has no epoch: a new canvas (seq 0, no cells, no
-- objects), or one rebuilt from Postgres after Redis lost its data (the
-- cells, the objects and the sequence number history reached), always
-- under a new epoch. Or, given the position Redis had when it was found
-- behind Postgres (restarted from old data), replaces that state in the
-- same way. If the canvas is no longer as expected (another gateway
-- initialised or rebuilt it first), its position wins and nothing changes.
--
-- KEYS[1] meta hash   KEYS[2] pixels   KEYS[3] object ids (set)
-- KEYS[4], KEYS[5] operation keys and their expiries (forgotten: they name
-- sequence numbers of a lost history)
-- ARGV[1] seq   ARGV[2] new epoch   ARGV[3] packed cells ('' for none)
-- ARGV[4] prefix of an object's hash   ARGV[5] prefix of an object's likers set
-- ARGV[6] the epoch expected ('' for none)   ARGV[7] the seq expected with it
-- ARGV[8..] per object: id, n, then n (field, value) pairs, m, then m likers
-- Returns {seq, epoch}.
local v = redis.call('HMGET', KEYS[1], 'seq', 'epoch')
local seq_now = tonumber(v[1]) or 0
if (v[2] or '') ~= ARGV[6] or (v[2] and seq_now ~= tonumber(ARGV[7])) then
  return {seq_now, v[2] or ''}
end
if ARGV[3] ~= '' then
  redis.call('SET', KEYS[2], ARGV[3])
else
  redis.call('DEL', KEYS[2])
end
-- Whatever object keys survived without the meta are stale.
for _, id in ipairs(redis.call('SMEMBERS', KEYS[3])) do
  redis.call('DEL', ARGV[4] .. id, ARGV[5] .. id)
end
redis.call('DEL', KEYS[3], KEYS[4], KEYS[5])
local i = 8
while i <= #ARGV do
  local id = ARGV[i]
  local n = tonumber(ARGV[i + 1])
  local fields = {}
  for j = 1, 2 * n do
    fields[j] = ARGV[i + 1 + j]
  end
  i = i + 2 + 2 * n
  redis.call('HSET', ARGV[4] .. id, unpack(fields))
  redis.call('SADD', KEYS[3], id)
  local m = tonumber(ARGV[i])
  if m > 0 then
    local likers = {}
    for j = 1, m do
      likers[j] = ARGV[i + j]
    end
    redis.call('SADD', ARGV[5] .. id, unpack(likers))
  end
  i = i + 1 + m
end
redis.call('HSET', KEYS[1], 'seq', ARGV[1], 'epoch', ARGV[2], 'persisted', ARGV[1])
return {tonumber(ARGV[1]), ARGV[2]}
