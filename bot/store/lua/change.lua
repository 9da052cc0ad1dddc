-- KEYS: rec, parts[, audit]
-- ARGV: to_state ('' keeps it), updated_at, n (-1: any state), n allowed states, k, v...[, audit]
if redis.call('EXISTS', KEYS[2]) == 0 then return false end
local n = tonumber(ARGV[3])
if n >= 0 then
  local state = redis.call('HGET', KEYS[2], 'state')
  local allowed = false
  for i = 4, 3 + n do
    if ARGV[i] == state then allowed = true end
  end
  if not allowed then return false end
end
for i = 4 + math.max(n, 0), last_own_arg(2), 2 do
  redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1])
end
if ARGV[1] ~= '' then redis.call('HSET', KEYS[2], 'state', ARGV[1]) end
redis.call('HINCRBY', KEYS[2], 'version', 1)
redis.call('HSET', KEYS[2], 'updated_at', ARGV[2])
local text = render(KEYS[2])
redis.call('SET', KEYS[1], text)
append_carried_audit(2)
return text
