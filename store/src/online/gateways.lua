-- How many gateways hold a user's open connections (gateways_of, above).
-- KEYS[1] the user's connections (zset entry -> expiry)
-- ARGV[1] now + the grace period (ms)
local gateways = gateways_of(KEYS[1], ARGV[1])
return gateways
