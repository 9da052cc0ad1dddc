-- Job fields live in one hash per field (id -> value), so each script names all its keys.
-- The ready index scores a job by when it may next be claimed: its due time while unclaimed,
-- the end of its lease while claimed.
-- KEYS: ready, spec, due, owner, lease, attempts   ARGV: owner, now, lease_until, limit
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[2], 'LIMIT', 0, ARGV[4])
local out = {}
for _, id in ipairs(ids) do
  local spec = redis.call('HGET', KEYS[2], id)
  if spec then
    redis.call('ZADD', KEYS[1], ARGV[3], id)
    redis.call('HSET', KEYS[4], id, ARGV[1])
    redis.call('HSET', KEYS[5], id, ARGV[3])
    local attempts = redis.call('HINCRBY', KEYS[6], id, 1)
    local due = redis.call('HGET', KEYS[3], id)
    for _, v in ipairs({id, spec, due, tostring(attempts)}) do out[#out + 1] = v end
  else
    redis.call('ZREM', KEYS[1], id)
  end
end
return out
