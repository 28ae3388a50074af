-- After a batch is committed and acknowledged: work out how far this
-- canvas's log is persisted, record it, and trim the stream below it.
--
-- Everything up to the group's last-delivered id that is no longer pending
-- has been acknowledged, and the persister acknowledges only after commit;
-- so the persisted mark is min(last delivered, lowest pending - 1). Both are
-- read here, atomically: entries delivered later have higher ids.
--
-- KEYS[1] canvas log stream   KEYS[2] canvas meta hash
-- ARGV[1] consumer group      ARGV[2] persisted events to keep in the stream
-- Returns {persisted mark, last sequence number}.

local function seq_of(id)
  return tonumber(string.match(id, '^(%d+)')) or 0
end

local last = nil
for _, g in ipairs(redis.call('XINFO', 'GROUPS', KEYS[1])) do
  local name, delivered
  for i = 1, #g, 2 do
    if g[i] == 'name' then name = g[i + 1] end
    if g[i] == 'last-delivered-id' then delivered = g[i + 1] end
  end
  if name == ARGV[1] then last = delivered end
end
local cur = tonumber(redis.call('HGET', KEYS[2], 'persisted') or '0')
local head = tonumber(redis.call('HGET', KEYS[2], 'seq') or '0')
if not last then
  return {cur, head}
end
local mark = seq_of(last)
local pending = redis.call('XPENDING', KEYS[1], ARGV[1])
if tonumber(pending[1]) > 0 then
  local below = seq_of(pending[2]) - 1
  if below < mark then mark = below end
end
if mark > cur then
  redis.call('HSET', KEYS[2], 'persisted', mark)
else
  mark = cur
end
local keep = tonumber(ARGV[2])
if mark - keep > 0 then
  redis.call('XTRIM', KEYS[1], 'MINID', (mark - keep + 1) .. '-0')
end
return {mark, head}
