-- Shared by the scripts that count gateways (prepended to them in
-- redis.rs): distinct node ids among the entries of a user's connection
-- set scoring above `open_after` (open connections: closed ones in their
-- grace period do not count). Entries are <user>\x1f<node>\x1f<conn>.
local function gateways_of(key, open_after)
  local open = redis.call('ZRANGE', key, '(' .. open_after, '+inf', 'BYSCORE')
  local nodes, gateways = {}, 0
  for _, e in ipairs(open) do
    local node = string.match(e, '\031([^\031]*)\031')
    if node and not nodes[node] then
      nodes[node] = true
      gateways = gateways + 1
    end
  end
  return gateways, #open
end
