-- KEYS: the five audit keys   ARGV: entry body, its digest, at
return append_audit(KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], ARGV[1], ARGV[2], ARGV[3])
