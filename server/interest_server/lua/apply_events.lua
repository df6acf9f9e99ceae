-- Apply a batch of new events of one user, atomically, if nobody changed the user meanwhile.
-- KEYS: state, window, seen, event_ids, event_times, concepts (see keys.py)
-- ARGV: expected_version, vec, t_ref, model, window_size, now_ms, dedupe_cutoff_ms, count,
--       then count x (event_id, fingerprint, window_entry, item_id),
--       then user_ttl_s, expected_epoch, new_epoch, check_ids
-- The epoch is a random id a user's state gets when first written: with the version it names one
-- incarnation of the user, so a caller holding a cached (version, epoch) never writes over a user
-- that was deleted (or expired) and re-created up to the same version meanwhile.
-- Returns {new version, epoch}; {-1} when the state moved (the caller re-reads and retries);
-- {-2} when check_ids is 1 and an event id is already stored (the caller re-reads to classify it).
local count = tonumber(ARGV[8])
local tail = 8 + count * 4
local state = redis.call('HMGET', KEYS[1], 'v', 'e')
local version = tonumber(state[1] or '0')
local epoch = state[2] or ''
if version ~= tonumber(ARGV[1]) or epoch ~= ARGV[tail + 2] then
  return {-1}
end
if ARGV[tail + 4] == '1' then
  for j = 0, count - 1 do
    if redis.call('HEXISTS', KEYS[4], ARGV[8 + j * 4 + 1]) == 1 then
      return {-2}
    end
  end
end
if epoch == '' then
  epoch = ARGV[tail + 3]
end
for j = 0, count - 1 do
  local base = 8 + j * 4
  redis.call('HSET', KEYS[4], ARGV[base + 1], ARGV[base + 2])
  redis.call('ZADD', KEYS[5], ARGV[6], ARGV[base + 1])
  redis.call('LPUSH', KEYS[2], ARGV[base + 3])
  redis.call('SADD', KEYS[3], ARGV[base + 4])
end
redis.call('LTRIM', KEYS[2], 0, tonumber(ARGV[5]) - 1)
-- Forget event ids past the dedupe horizon, a bounded number per call.
local expired = redis.call('ZRANGEBYSCORE', KEYS[5], '-inf', ARGV[7], 'LIMIT', 0, 500)
if #expired > 0 then
  redis.call('HDEL', KEYS[4], unpack(expired))
  redis.call('ZREM', KEYS[5], unpack(expired))
end
local applied = tonumber(redis.call('HGET', KEYS[1], 'n') or '0') + count
redis.call('HSET', KEYS[1], 'v', version + 1, 'vec', ARGV[2], 't', ARGV[3], 'n', applied,
  'm', ARGV[4], 'u', ARGV[6], 'e', epoch)
-- Optional inactivity TTL: every write restarts the clock on all of the user's keys; with it
-- off (0), expiries left from when it was on are removed.
local ttl = tonumber(ARGV[tail + 1] or '0')
if ttl > 0 then
  for i = 1, #KEYS do redis.call('EXPIRE', KEYS[i], ttl) end
elseif redis.call('PTTL', KEYS[1]) >= 0 then
  for i = 1, #KEYS do redis.call('PERSIST', KEYS[i]) end
end
return {version + 1, epoch}
