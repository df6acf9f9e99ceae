-- Replace one user's record if nobody changed the user since the caller read it.
-- KEYS: record, concepts, event log, then the five format-1 keys (state, window, seen,
--       event_ids, event_times); see keys.py
-- ARGV: expected header ('' = the user had no record), new record, user_ttl_s,
--       format-1 mark ('' = the caller saw no format-1 state, else "<v>:<e>" of what it
--       converted), set_concepts ('1' = store ARGV[6] as the concepts), concepts,
--       change channel ('' = none: PUBLISH there once written, to wake WatchRecommendations
--       streams on every server process; a keyless command, so cluster-safe),
--       event_log_maxlen ('0' or absent = no log), then the write's new events for the log,
--       five values each: item id, type, value ('' = none), effective ms, event id
-- The header (magic, version, epoch) names one incarnation of the user at one version, so a
-- caller holding an old or cached record never writes over a user that moved, or that was
-- deleted and re-created up to the same version meanwhile.
-- Returns 1 when written, 0 when the user moved (the caller re-reads and retries), 2 when the
-- caller saw no format-1 state but there is one (the caller reads and converts it, and retries).
-- The events reach the log only once the compare-and-set passed, in this same atomic step: an
-- acknowledged event is always in the log, and a refused attempt (retried) appends nothing.
-- Spec: docs/storage-format.md
local expected = ARGV[1]
if expected == '' then
  if redis.call('EXISTS', KEYS[1]) == 1 then
    return 0
  end
  local old = redis.call('HMGET', KEYS[4], 'v', 'e')
  local mark = ''
  if old[1] then
    mark = old[1] .. ':' .. (old[2] or '')
  end
  if mark ~= ARGV[4] then
    if ARGV[4] == '' then
      return 2
    end
    return 0
  end
  if mark ~= '' then
    redis.call('DEL', KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8])
  end
elseif redis.call('GETRANGE', KEYS[1], 0, #expected - 1) ~= expected then
  return 0
end
redis.call('SET', KEYS[1], ARGV[2])
if ARGV[5] == '1' then
  redis.call('SET', KEYS[2], ARGV[6])
end
local maxlen = tonumber(ARGV[8] or '0') or 0
if maxlen > 0 then
  -- '~': trim whole stream nodes only (cheap); the log may exceed maxlen by one node.
  for j = 9, #ARGV, 5 do
    redis.call('XADD', KEYS[3], 'MAXLEN', '~', maxlen, '*', 'i', ARGV[j], 't', ARGV[j + 1],
               'v', ARGV[j + 2], 'ts', ARGV[j + 3], 'e', ARGV[j + 4])
  end
end
-- Optional inactivity TTL: every write restarts the clock on all of the user's keys; with it
-- off (0), expiries left from when it was on are removed (SET already cleared the record's).
local ttl = tonumber(ARGV[3])
if ttl > 0 then
  redis.call('EXPIRE', KEYS[1], ttl)
  redis.call('EXPIRE', KEYS[2], ttl)
  redis.call('EXPIRE', KEYS[3], ttl)
else
  if redis.call('PTTL', KEYS[2]) >= 0 then
    redis.call('PERSIST', KEYS[2])
  end
  if redis.call('PTTL', KEYS[3]) >= 0 then
    redis.call('PERSIST', KEYS[3])
  end
end
if ARGV[7] and ARGV[7] ~= '' then
  redis.call('PUBLISH', ARGV[7], '')
end
return 1
