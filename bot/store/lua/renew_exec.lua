-- KEYS: fence   ARGV: owner, token, expires_at
-- Only the current claim renews; a lapsed one too, as long as nobody took it over.
local cur = redis.call('HMGET', KEYS[1], 'token', 'owner')
if cur[1] ~= ARGV[2] or cur[2] ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'expires_at', ARGV[3])
return 1
