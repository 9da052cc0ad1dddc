-- keys: counter, entries hash, time index, subject index   text: entry JSON minus '{'
-- A change may carry its audit entry, written in the same script: then its four keys follow the
-- script's own `base` keys (before the resend memo) and its text and time are the last two args.
local function append_audit(counter, entries, by_time, by_subject, text, at)
  local seq = redis.call('INCR', counter)
  redis.call('HSET', entries, seq, '{"seq":' .. seq .. ',' .. text)
  redis.call('ZADD', by_time, at, seq)
  redis.call('ZADD', by_subject, at, seq)
  return seq
end
local function carries_audit(base) return #KEYS > base + 1 end
local function last_own_arg(base)
  if carries_audit(base) then return #ARGV - 2 end
  return #ARGV
end
local function append_carried_audit(base)
  if carries_audit(base) then
    append_audit(KEYS[base + 1], KEYS[base + 2], KEYS[base + 3], KEYS[base + 4],
      ARGV[#ARGV - 1], ARGV[#ARGV])
  end
end
