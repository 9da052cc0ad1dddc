-- A fixed-window counter: the key counts attempts and expires when its window ends.
-- KEYS: counter   ARGV: limit, window in ms
-- Answers {count, ms left in the window}. Not memoised against resends: a resent attempt
-- counts twice, which only errs towards refusing.
local count = redis.call('INCR', KEYS[1])
local left = redis.call('PTTL', KEYS[1])
if left < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  left = tonumber(ARGV[2])
end
return {count, left}
