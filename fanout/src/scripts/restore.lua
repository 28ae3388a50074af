-- Initialises a canvas that has no epoch: a new canvas (seq 0, no cells), or
-- one rebuilt from Postgres after Redis lost its data (the cells and the
-- sequence number history reached), always under a new epoch. If another
-- gateway initialised it first, its position wins and nothing changes.
--
-- KEYS[1] meta hash   KEYS[2] pixels
-- ARGV[1] seq   ARGV[2] new epoch   ARGV[3] packed cells ('' for none)
-- Returns {seq, epoch}.
local v = redis.call('HMGET', KEYS[1], 'seq', 'epoch')
if v[2] then
  return {tonumber(v[1]) or 0, v[2]}
end
if ARGV[3] ~= '' then
  redis.call('SET', KEYS[2], ARGV[3])
else
  redis.call('DEL', KEYS[2])
end
redis.call('HSET', KEYS[1], 'seq', ARGV[1], 'epoch', ARGV[2], 'persisted', ARGV[1])
return {tonumber(ARGV[1]), ARGV[2]}
