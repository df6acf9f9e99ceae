-- write_record.lua for many users in one call (a single Redis only: the keys span slots), with
-- the popularity of each written user's events. The loader prepends write_record.lua as the
-- function write_one(KEYS, ARGV).
-- KEYS: 7 per user (as write_record.lua), then the popularity sorted set.
-- ARGV: 7 per user (as write_record.lua), then per user: a count c, then c pairs
--       (increment, item id), added to popularity only if that user was written.
-- Returns write_record.lua's reply for each user, in order.
local n = 7
local users = (#KEYS - 1) / n
local pop = KEYS[#KEYS]
local out = {}
local p = users * n + 1
for u = 0, users - 1 do
  local k, a = {}, {}
  for j = 1, n do
    k[j] = KEYS[u * n + j]
    a[j] = ARGV[u * n + j]
  end
  local reply = write_one(k, a)
  out[u + 1] = reply
  local c = tonumber(ARGV[p])
  if reply == 1 then
    for j = 1, c do
      redis.call('ZINCRBY', pop, ARGV[p + 2 * j - 1], ARGV[p + 2 * j])
    end
  end
  p = p + 1 + 2 * c
end
return out
