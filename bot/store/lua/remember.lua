-- KEYS: key   ARGV: ttl in ms
if redis.call('SET', KEYS[1], '1', 'NX', 'PX', ARGV[1]) then return 1 end
return 0
