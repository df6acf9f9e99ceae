-- Add forward-decayed increments to item popularity in one call (one command instead of one
-- ZINCRBY per item).
-- KEYS: popularity sorted set. ARGV: increment, item id, increment, item id, ...
-- Spec: docs/storage-format.md
for i = 1, #ARGV, 2 do
  redis.call('ZINCRBY', KEYS[1], ARGV[i], ARGV[i + 1])
end
return #ARGV / 2
