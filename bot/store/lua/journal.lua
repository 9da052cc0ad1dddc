-- KEYS: counter, journal list   ARGV: entry JSON minus '{'
local seq = redis.call('INCR', KEYS[1])
redis.call('RPUSH', KEYS[2], '{"seq":' .. seq .. ',' .. ARGV[1])
return seq
