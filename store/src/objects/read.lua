-- A page of a canvas's objects, in id order, and the position they
-- include, read atomically.
--
-- KEYS[1] meta hash   KEYS[2] object ids (set)
-- ARGV[1] prefix of an object's hash   ARGV[2] the id to start after ('' for
-- the first page)   ARGV[3] '1' to include fog regions (a gm)
-- ARGV[4] byte budget: the page ends before an object that would take its
-- fields and values past it (one object is always included)
-- Returns {seq, epoch or false, {{id, field, value, ...}, ...}, next}: next
-- is the last id of the page when more objects follow, else ''.
local v = redis.call('HMGET', KEYS[1], 'seq', 'epoch')
local ids = redis.call('SMEMBERS', KEYS[2])
table.sort(ids)
local after, gm, budget = ARGV[2], ARGV[3] == '1', tonumber(ARGV[4])
local objects, used, next = {}, 0, ''
for _, id in ipairs(ids) do
  if after == '' or id > after then
    local fields = redis.call('HGETALL', ARGV[1] .. id)
    local entry, size, fog = {id}, #id, false
    for i, x in ipairs(fields) do
      entry[#entry + 1] = x
      size = size + #x + 4
      if i % 2 == 0 and fields[i - 1] == 'kind' and x == 'fog' then
        fog = true
      end
    end
    if gm or not fog then
      if #objects > 0 and used + size > budget then
        next = objects[#objects][1]
        break
      end
      objects[#objects + 1] = entry
      used = used + size
    end
  end
end
return {tonumber(v[1]) or 0, v[2], objects, next}
