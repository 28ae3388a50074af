-- Moves existing connection entries' expiry (a refresh, or the grace period
-- after a close) and sets each user's index score to the latest expiry
-- among its connections, so the sweep visits the user when it is due.
-- KEYS[1] online index   KEYS[2..] the users' connection sets
-- ARGV[1] expiry (ms)   ARGV[2] key lifetime (ms)   ARGV[3..] per key in
-- KEYS[2..]: user, entry
for i = 2, #KEYS do
  local user, entry = ARGV[2 * i - 1], ARGV[2 * i]
  redis.call('ZADD', KEYS[i], 'XX', ARGV[1], entry)
  redis.call('PEXPIRE', KEYS[i], ARGV[2])
  local top = redis.call('ZRANGE', KEYS[i], -1, -1, 'WITHSCORES')
  if #top > 0 then
    redis.call('ZADD', KEYS[1], top[2], user)
  end
end
return 0
