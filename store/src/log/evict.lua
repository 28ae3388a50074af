-- Evicts a cold canvas from Redis: every key of its state, log, objects,
-- operation keys and presence, if it is still as the caller found it
-- (same seq), everything up to that seq is persisted, and nobody is on it.
-- The gateways rebuild it from Postgres on its next use, under a new epoch.
--
-- KEYS[1] meta   KEYS[2] pixels   KEYS[3] log stream   KEYS[4] object ids
-- KEYS[5] operation keys   KEYS[6] operation key expiries
-- KEYS[7] presence (sorted set scored by expiry, ms)   KEYS[8] presence details
-- KEYS[9] presence entries per user
-- ARGV[1] the seq the caller found   ARGV[2] prefix of an object's hash
-- ARGV[3] prefix of an object's likers set
-- Returns 1 if evicted, else 0 (changed, unpersisted events, or members).
local v = redis.call('HMGET', KEYS[1], 'seq', 'persisted', 'epoch')
if not v[3] then
  return 0
end
local seq = tonumber(v[1]) or 0
if seq ~= tonumber(ARGV[1]) or (tonumber(v[2]) or 0) < seq then
  return 0
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if redis.call('ZCOUNT', KEYS[7], now, '+inf') > 0 then
  return 0
end
for _, id in ipairs(redis.call('SMEMBERS', KEYS[4])) do
  redis.call('DEL', ARGV[2] .. id, ARGV[3] .. id)
end
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8], KEYS[9])
return 1
