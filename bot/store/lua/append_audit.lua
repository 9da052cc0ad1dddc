-- keys: counter, entries hash, time index, subject index, chain head
-- args: the entry's canonical body (JSON), the sha256 of that body, its time
-- The entry is chained here, where appends are serialised: it links to the head's hash
-- (bot/store/audit_chain.py defines the link; sha256.lua computes it) and becomes the head.
-- A change may carry its audit entry, written in the same script: then its five keys follow the
-- script's own `base` keys (before the resend memo) and its three args are the last ones.
local GENESIS = string.rep('0', 64)
local function append_audit(counter, entries, by_time, by_subject, head, body, digest, at)
  local seq = redis.call('INCR', counter)
  local prev = redis.call('GET', head) or GENESIS
  local hash = sha256hex(prev .. '\n' .. seq .. '\n' .. digest)
  redis.call('HSET', entries, seq,
    '{"seq":' .. seq .. ',"prev":"' .. prev .. '","hash":"' .. hash .. '",' .. string.sub(body, 2))
  redis.call('SET', head, hash)
  redis.call('ZADD', by_time, at, seq)
  redis.call('ZADD', by_subject, at, seq)
  return seq
end
local AUDIT_ARGS = 3
local function carries_audit(base) return #KEYS > base + 1 end
local function last_own_arg(base)
  if carries_audit(base) then return #ARGV - AUDIT_ARGS end
  return #ARGV
end
local function append_carried_audit(base)
  if carries_audit(base) then
    append_audit(KEYS[base + 1], KEYS[base + 2], KEYS[base + 3], KEYS[base + 4], KEYS[base + 5],
      ARGV[#ARGV - 2], ARGV[#ARGV - 1], ARGV[#ARGV])
  end
end
