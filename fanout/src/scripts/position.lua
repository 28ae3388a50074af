-- A canvas's position: {seq, epoch}, creating the epoch (at seq 0) for a
-- canvas that has none yet.
--
-- KEYS[1] meta hash   ARGV[1] epoch to use if the canvas has none
if redis.call('HSETNX', KEYS[1], 'epoch', ARGV[1]) == 1 then
  redis.call('HSETNX', KEYS[1], 'seq', 0)
end
local v = redis.call('HMGET', KEYS[1], 'seq', 'epoch')
return {tonumber(v[1]) or 0, v[2]}
