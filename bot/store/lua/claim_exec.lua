-- KEYS: fence   ARGV: owner, now, expires_at
-- Answers {} while another owner's claim is live, else {token, previous owner, its expiry}.
local cur = redis.call('HMGET', KEYS[1], 'token', 'owner', 'expires_at')
if cur[2] and cur[2] ~= ARGV[1] and tonumber(cur[3]) > tonumber(ARGV[2]) then return {} end
local token = redis.call('HINCRBY', KEYS[1], 'token', 1)
redis.call('HSET', KEYS[1], 'owner', ARGV[1], 'expires_at', ARGV[3])
return {tostring(token), cur[2] or '', cur[3] or ''}
