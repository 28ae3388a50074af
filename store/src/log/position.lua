-- A canvas's position: {seq, epoch}, with epoch false for a canvas that has
-- none yet (new, or Redis lost its data): it must be initialised first.
--
-- KEYS[1] meta hash
local v = redis.call('HMGET', KEYS[1], 'seq', 'epoch')
return {tonumber(v[1]) or 0, v[2]}
