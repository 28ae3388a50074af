-- Removes the entries that expired by now and returns {live entries, the
-- users left with no live entry...}: exactly one caller removes an entry,
-- so exactly one announces each departure.
-- KEYS[1] presence zset, KEYS[2] presence-info hash; ARGV[1] now (ms)
local dead = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, 1000)
if #dead == 0 then
  return {tostring(redis.call('ZCOUNT', KEYS[1], '(' .. ARGV[1], '+inf'))}
end
for _, m in ipairs(dead) do
  redis.call('ZREM', KEYS[1], m)
  redis.call('HDEL', KEYS[2], m)
end
local live = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. ARGV[1], '+inf')
local present = {}
for _, m in ipairs(live) do
  local user = string.match(m, '^(.-)\31')
  if user then
    present[user] = true
  end
end
local left, seen = {tostring(#live)}, {}
for _, m in ipairs(dead) do
  local user = string.match(m, '^(.-)\31')
  if user and not present[user] and not seen[user] then
    seen[user] = true
    table.insert(left, user)
  end
end
return left
