-- The canvas's pixels and the position they include, read atomically.
--
-- KEYS[1] meta hash   KEYS[2] pixels
-- Returns {seq, epoch or false, pixel bytes}.
local v = redis.call('HMGET', KEYS[1], 'seq', 'epoch')
local pixels = redis.call('GET', KEYS[2]) or ''
return {tonumber(v[1]) or 0, v[2], pixels}
