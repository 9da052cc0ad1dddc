-- An outbox queue is a sorted set scored by sequence number; a set names the non-empty queues.
-- KEYS: counter, queue, queues[, audit]   ARGV: entry JSON minus '{', queue name[, audit]
local seq = redis.call('INCR', KEYS[1])
redis.call('ZADD', KEYS[2], seq, '{"seq":' .. seq .. ',' .. ARGV[1])
redis.call('SADD', KEYS[3], ARGV[2])
append_carried_audit(3)
return seq
