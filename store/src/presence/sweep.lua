-- Removes the entries that expired by now and returns {live entries, the
-- users left with no entry...}: exactly one caller removes an entry, so
-- exactly one announces each departure. Its cost grows with the entries
-- removed, not with the canvas's size.
-- KEYS[1] presence zset, KEYS[2] presence-info hash, KEYS[3] entries per user
-- ARGV[1] now (ms)
local dead = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, 1000)
local left = {}
for _, m in ipairs(dead) do
  redis.call('ZREM', KEYS[1], m)
  redis.call('HDEL', KEYS[2], m)
  local user = string.match(m, '^(.-)\31')
  if user and redis.call('HINCRBY', KEYS[3], user, -1) <= 0 then
    redis.call('HDEL', KEYS[3], user)
    table.insert(left, user)
  end
end
table.insert(left, 1, tostring(redis.call('ZCOUNT', KEYS[1], '(' .. ARGV[1], '+inf')))
return left
