-- A canvas's objects and the position they include, read atomically.
--
-- KEYS[1] meta hash   KEYS[2] object ids (set)
-- ARGV[1] prefix of an object's hash
-- Returns {seq, epoch or false, {{id, field, value, field, value, ...}, ...}}.
local v = redis.call('HMGET', KEYS[1], 'seq', 'epoch')
local objects = {}
for _, id in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  local entry = {id}
  for _, x in ipairs(redis.call('HGETALL', ARGV[1] .. id)) do
    entry[#entry + 1] = x
  end
  objects[#objects + 1] = entry
end
return {tonumber(v[1]) or 0, v[2], objects}
