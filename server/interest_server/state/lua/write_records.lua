-- write_record.lua for many users in one call (a single Redis only: the keys span slots), with
-- the popularity of each written user's events. The loader prepends write_record.lua as the
-- function write_one(KEYS, ARGV).
-- Compact layout (each argument costs Redis and the client a conversion; a batch has hundreds):
-- KEYS: per user the record and concepts keys, plus the five format-1 keys only for a user
--       with no record yet (the only case write_one reads them); then the popularity set.
-- ARGV: user_ttl_s, then per user: its key count (2 or 7), expected header, new record,
--       format-1 mark, change channel, a count c, then c pairs (increment, item id), added to
--       popularity only if that user was written. (Concepts are never set by this path.)
-- Returns write_record.lua's reply for each user, in order.
-- Spec: docs/storage-format.md
local pop = KEYS[#KEYS]
local ttl = ARGV[1]
local out = {}
local ki, p, u = 1, 2, 0
while p <= #ARGV do
  local nk = tonumber(ARGV[p])
  local k = {}
  for j = 1, nk do
    k[j] = KEYS[ki + j - 1]
  end
  ki = ki + nk
  local reply = write_one(k, {ARGV[p + 1], ARGV[p + 2], ttl, ARGV[p + 3], '0', '', ARGV[p + 4]})
  u = u + 1
  out[u] = reply
  local c = tonumber(ARGV[p + 5])
  if reply == 1 then
    for j = 1, c do
      redis.call('ZINCRBY', pop, ARGV[p + 4 + 2 * j], ARGV[p + 5 + 2 * j])
    end
  end
  p = p + 6 + 2 * c
end
return out
