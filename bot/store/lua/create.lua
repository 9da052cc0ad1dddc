-- KEYS: rec, parts, kind index[, audit]
-- ARGV: head, state, version, updated_at, created_at, id, k, v...[, audit]
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[2], 'head', ARGV[1], 'state', ARGV[2], 'version', ARGV[3],
  'updated_at', ARGV[4])
for i = 7, last_own_arg(3), 2 do redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1]) end
redis.call('SET', KEYS[1], render(KEYS[2]))
redis.call('ZADD', KEYS[3], ARGV[5], ARGV[6])
append_carried_audit(3)
return 1
