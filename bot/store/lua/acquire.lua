-- KEYS: lock   ARGV: owner, now, expires_at, keep_ms
local cur = redis.call('HMGET', KEYS[1], 'owner', 'expires_at')
if cur[1] and cur[1] ~= ARGV[1] and tonumber(cur[2]) > tonumber(ARGV[2]) then return 0 end
redis.call('HSET', KEYS[1], 'owner', ARGV[1], 'expires_at', ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return 1
