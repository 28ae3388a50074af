-- How many gateways hold a user's open connections: distinct node ids among
-- the entries expiring after the grace period (closed ones in their grace
-- do not count).
-- KEYS[1] the user's connections (zset entry -> expiry)
-- ARGV[1] now + the grace period (ms)
local open = redis.call('ZRANGE', KEYS[1], '(' .. ARGV[1], '+inf', 'BYSCORE')
local nodes, gateways = {}, 0
for _, e in ipairs(open) do
  local node = string.match(e, '\031([^\031]*)\031')
  if node and not nodes[node] then
    nodes[node] = true
    gateways = gateways + 1
  end
end
return gateways
