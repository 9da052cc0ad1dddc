-- KEYS: lock   ARGV: owner, now
local cur = redis.call('HMGET', KEYS[1], 'owner', 'expires_at')
if cur[1] ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
if tonumber(cur[2]) > tonumber(ARGV[2]) then return 1 end
return 0
