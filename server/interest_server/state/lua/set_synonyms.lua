-- Replace the synonym lists of attribute values, refusing the whole call if the tenant would
-- then hold more than the cap. Lists are JSON arrays; the count reads each stored list.
-- KEYS: the synonyms hash. ARGV: cap, then triples: field, synonym count, JSON list ('' deletes).
-- Reply: {1, stored, deleted, total}, or {0, total it would have been} when over the cap.
-- Spec: docs/storage-format.md
local counts = {}
local stored = redis.call('HGETALL', KEYS[1])
for i = 1, #stored, 2 do
  counts[stored[i]] = #cjson.decode(stored[i + 1])
end
for i = 2, #ARGV, 3 do
  if ARGV[i + 2] == '' then counts[ARGV[i]] = nil else counts[ARGV[i]] = tonumber(ARGV[i + 1]) end
end
local total = 0
for _, n in pairs(counts) do total = total + n end
if total > tonumber(ARGV[1]) then
  return {0, total}
end
local written, deleted = 0, 0
for i = 2, #ARGV, 3 do
  if ARGV[i + 2] == '' then
    deleted = deleted + redis.call('HDEL', KEYS[1], ARGV[i])
  else
    redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 2])
    written = written + 1
  end
end
return {1, written, deleted, total}
