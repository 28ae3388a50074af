-- Prepended to a write script on a Redis Cluster. The caller's last argument
-- is the run id of the server it checked this canvas against Postgres on
-- ('' when there is no history to check against); it is removed from ARGV
-- before the script proper reads it. On another server (a replica promoted
-- since, possibly behind what Postgres holds) nothing is written and the
-- error "NEWSERVER <run id>" asks the caller to check the canvas again.
local expected = table.remove(ARGV)
if expected ~= '' then
  local server = string.match(redis.call('INFO', 'server'), 'run_id:(%w+)')
  if server ~= expected then
    return redis.error_reply('NEWSERVER ' .. tostring(server))
  end
end
