-- Removes expired connection entries of the users whose latest expiry has
-- passed; returns the users left with none, each exactly once (the caller
-- that removes a user from the index reports it).
-- KEYS[1] online index
-- ARGV[1] now (ms)   ARGV[2] prefix of a user's connection set
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, 1000)
local gone = {}
for _, user in ipairs(due) do
  local key = ARGV[2] .. user
  redis.call('ZREMRANGEBYSCORE', key, '-inf', ARGV[1])
  local top = redis.call('ZRANGE', key, -1, -1, 'WITHSCORES')
  if #top == 0 then
    redis.call('ZREM', KEYS[1], user)
    gone[#gone + 1] = user
  else
    redis.call('ZADD', KEYS[1], top[2], user)
  end
end
return gone
