-- KEYS: ready, spec, due, owner, lease, attempts   ARGV: id, owner ('' for anyone)
if ARGV[2] ~= '' and redis.call('HGET', KEYS[4], ARGV[1]) ~= ARGV[2] then return 0 end
redis.call('ZREM', KEYS[1], ARGV[1])
local existed = redis.call('HDEL', KEYS[2], ARGV[1])
for i = 3, 6 do redis.call('HDEL', KEYS[i], ARGV[1]) end
return existed
