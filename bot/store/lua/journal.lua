-- KEYS: counter, journal list, fence   ARGV: entry JSON minus '{', fencing token ('' for none)
local refused = fence_refusal(KEYS[3], ARGV[2])
if refused then return refused end
local seq = redis.call('INCR', KEYS[1])
redis.call('RPUSH', KEYS[2], '{"seq":' .. seq .. ',' .. ARGV[1])
return seq
