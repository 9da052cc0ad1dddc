-- KEYS: fence   ARGV: owner, token, now
local cur = redis.call('HMGET', KEYS[1], 'token', 'owner', 'expires_at')
if cur[1] ~= ARGV[2] or cur[2] ~= ARGV[1] or tonumber(cur[3]) <= tonumber(ARGV[3]) then
  return 0
end
redis.call('HSET', KEYS[1], 'expires_at', ARGV[3])
return 1
