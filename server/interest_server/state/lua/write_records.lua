-- write_record.lua for many users in one call (a single Redis only: the keys span slots), with
-- the popularity of each written user's events. The loader prepends write_record.lua as the
-- function write_one(KEYS, ARGV).
-- Compact layout (each argument costs Redis and the client a conversion; a batch has hundreds):
-- KEYS: per user the record, concepts and event log keys, plus the five format-1 keys only for
--       a user with no record yet (the only case write_one reads them); then the popularity set.
-- ARGV: user_ttl_s, event_log_maxlen, then per user: its key count (3 or 8), expected header,
--       new record, format-1 mark, change channel, a count c, then c pairs (increment, item id),
--       added to popularity only if that user was written, then a count n and n events for the
--       log, five values each as in write_record.lua. (Concepts are never set by this path.)
-- Returns write_record.lua's reply for each user, in order.
-- Spec: docs/storage-format.md
local pop = KEYS[#KEYS]
local ttl = ARGV[1]
local maxlen = ARGV[2]
local out = {}
local ki, p, u = 1, 3, 0
while p <= #ARGV do
  local nk = tonumber(ARGV[p])
  local k = {}
  for j = 1, nk do
    k[j] = KEYS[ki + j - 1]
  end
  ki = ki + nk
  local c = tonumber(ARGV[p + 5])
  local e = p + 6 + 2 * c
  local n = tonumber(ARGV[e])
  local a = {ARGV[p + 1], ARGV[p + 2], ttl, ARGV[p + 3], '0', '', ARGV[p + 4], maxlen}
  for j = 1, 5 * n do
    a[8 + j] = ARGV[e + j]
  end
  local reply = write_one(k, a)
  u = u + 1
  out[u] = reply
  if reply == 1 then
    for j = 1, c do
      redis.call('ZINCRBY', pop, ARGV[p + 4 + 2 * j], ARGV[p + 5 + 2 * j])
    end
  end
  p = e + 1 + 5 * n
end
return out
