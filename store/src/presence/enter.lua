-- Adds or refreshes a presence entry; returns {1 if its user had no other
-- live entry on the canvas (the user just arrived) else 0, live entries}.
-- KEYS[1] presence zset, KEYS[2] presence-info hash
-- ARGV[1] entry, ARGV[2] expiry (ms), ARGV[3] now (ms), ARGV[4] info JSON,
-- ARGV[5] the user's entry prefix (user .. "\31"), ARGV[6] key lifetime (ms)
local live = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. ARGV[3], '+inf')
local first = 1
local count = #live + 1
local prefix = ARGV[5]
for _, m in ipairs(live) do
  if m ~= ARGV[1] and string.sub(m, 1, #prefix) == prefix then
    first = 0
  end
  if m == ARGV[1] then
    count = count - 1
  end
end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[4])
redis.call('PEXPIRE', KEYS[1], ARGV[6])
redis.call('PEXPIRE', KEYS[2], ARGV[6])
return {first, count}
