-- A connection opened: adds its entry to its user's set and the user to the
-- online index. Returns {1 if the user had no live connection anywhere (the
-- user just came online) else 0, the user's open connections now: entries
-- expiring after the grace period, so closed ones in their grace do not
-- count, and the gateways holding them (gateways_of, prepended)}.
-- KEYS[1] online index (zset user -> latest expiry)
-- KEYS[2] the user's connections (zset entry -> expiry)
-- ARGV[1] user   ARGV[2] entry   ARGV[3] expiry (ms)   ARGV[4] now (ms)
-- ARGV[5] key lifetime (ms)   ARGV[6] now + the grace period (ms)
local live = redis.call('ZCOUNT', KEYS[2], '(' .. ARGV[4], '+inf')
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[2])
redis.call('PEXPIRE', KEYS[2], ARGV[5])
redis.call('ZADD', KEYS[1], 'GT', ARGV[3], ARGV[1])
local gateways, open = gateways_of(KEYS[2], ARGV[6])
if live == 0 then
  return {1, open, gateways}
end
return {0, open, gateways}
