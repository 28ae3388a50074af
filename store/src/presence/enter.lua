-- Adds or refreshes a presence entry; returns {1 if its user had no other
-- entry on the canvas (the user just arrived) else 0, live entries}.
-- Constant time in the canvas's size: the user's entries are counted in
-- KEYS[3], and the live ones counted by score.
-- KEYS[1] presence zset, KEYS[2] presence-info hash, KEYS[3] entries per user
-- ARGV[1] entry, ARGV[2] expiry (ms), ARGV[3] now (ms), ARGV[4] info JSON,
-- ARGV[5] the user, ARGV[6] key lifetime (ms)
local first = 0
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) then
  if redis.call('HINCRBY', KEYS[3], ARGV[5], 1) == 1 then
    first = 1
  end
end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[4])
for i = 1, 3 do
  redis.call('PEXPIRE', KEYS[i], ARGV[6])
end
return {first, redis.call('ZCOUNT', KEYS[1], '(' .. ARGV[3], '+inf')}
