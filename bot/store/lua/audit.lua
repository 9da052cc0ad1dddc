-- KEYS: the four audit keys   ARGV: entry JSON minus '{', at
return append_audit(KEYS[1], KEYS[2], KEYS[3], KEYS[4], ARGV[1], ARGV[2])
