"""Per-user interest state in Redis: atomic, idempotent event application and state reads."""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import redis

from interest_server.caller import check_waiting
from interest_server.errors import Aborted
from interest_server.events import EventRecord, EventResult, EventType, Outcome, RejectReason
from interest_server.model.interest_model import (
    HistoryEntry,
    InterestFunction,
    WeightedItem,
    event_weight,
)
from interest_server.state.keys import DEFAULT_KEYS, KeySpace, UserKeys
from interest_server.state.redis_conn import ScriptBatch, is_cluster
from interest_server.state.user_record import (
    NewEvent,
    UserRecord,
    event_id_hash,
    fingerprint_bits,
    from_format1,
    new_epoch,
)

log = logging.getLogger(__name__)

WRITTEN, WRITE_FORMAT1 = 1, 2
"""write_record.lua's replies besides 0 (the user moved)."""
MAX_CAS_ATTEMPTS = 32
"""Optimistic retries before giving up with ABORTED (only under extreme same-user contention)."""
POPULARITY_EPOCH_MS = 1_767_225_600_000  # 2026-01-01: forward decay is relative to this.


def now_ms() -> int:
    """Wall-clock time in epoch milliseconds."""
    return int(time.time() * 1000)


def pack_vector(vec: np.ndarray) -> bytes:
    """Little-endian float32 bytes."""
    return np.asarray(vec, dtype="<f4").tobytes()


def unpack_vector(raw: bytes | None) -> np.ndarray | None:
    """Inverse of pack_vector; None stays None."""
    if not raw:
        return None
    return np.frombuffer(raw, dtype="<f4").astype(np.float32)


@dataclass
class UserSnapshot:
    """What Recommend and GetUserState need of one user, read in one round trip."""

    user_id: str
    version: int = 0
    accumulator: np.ndarray | None = None
    model: str = ""
    event_count: int = 0
    recent: list[dict] = field(default_factory=list)
    consumed: set[str] = field(default_factory=set)
    concepts_json: bytes | None = None


@dataclass
class _Pending:
    """One user's share of a batch while it is being applied."""

    user_id: str
    keys: UserKeys
    indices: list[int]
    format1: bool = False
    """The write script found the user in record format 1: read and convert it."""


@dataclass
class _Write:
    """One user's event write (write_record.lua without concepts), with the popularity its
    events add if written."""

    keys: list[str]
    """All of the user's keys (UserKeys.all())."""
    expected: bytes
    record: bytes
    format1_mark: str
    channel: str
    popularity: list[float | str]
    log: list[str | int | float] = field(default_factory=list)
    """The new events for the event log, flat, five values each (_log_values); empty when the
    log is off."""

    def script_args(self, ttl_s: int, log_maxlen: int) -> list[bytes | str | int | float]:
        """ARGV of write_record.lua for this write."""
        return [self.expected, self.record, ttl_s, self.format1_mark, 0, b"", self.channel,
                log_maxlen, *self.log]


def _log_values(ev: EventRecord, ts_ms: int) -> tuple[str, int, float | str, int, str]:
    """One event's values for the event log stream (fields i, t, v, ts, e): item id, type,
    value ('' = none), effective time (ms), event id. Spec: docs/storage-format.md"""
    return (ev.item_id, int(ev.type), "" if ev.value is None else ev.value, ts_ms, ev.event_id)


@dataclass
class _Loaded:
    """A user's record as read, with what the write script must find to replace it."""

    record: UserRecord
    expected: bytes
    """The stored record's header; b'' when there was no record."""
    format1_mark: str = ""
    """'<v>:<e>' of a format-1 state the record was converted from; '' when there was none."""
    concepts: bytes | None = None


@dataclass(frozen=True)
class _Batch:
    """A batch of events with what is computed once for it, whatever the retries."""

    events: Sequence[EventRecord]
    fingerprints: list[int]
    id_hashes: list[int]
    received_ms: int
    item_vector: Callable[[str], np.ndarray]

    def timestamp_ms(self, i: int) -> int:
        """Event i's time: its own, else when the batch was received."""
        return self.events[i].timestamp_ms or self.received_ms


@dataclass
class _Split:
    """A user's events (indices into the batch) sorted against its record."""

    new: list[int] = field(default_factory=list)
    duplicate: list[int] = field(default_factory=list)
    """Same id, same payload as a stored event."""
    conflict: list[int] = field(default_factory=list)
    """An id already used for a different event: rejected."""


def _split(p: _Pending, record: UserRecord, batch: _Batch) -> _Split:
    """Sort a user's events into new, duplicate and conflicting replays of the record's."""
    # Only this batch's ids are looked up (found in the rows, no dict of all of them).
    known = record.fingerprints_of([batch.id_hashes[i] for i in p.indices])
    split = _Split()
    for i in p.indices:
        h, fp = batch.id_hashes[i], batch.fingerprints[i]
        stored = known.get(h)
        if stored is None:
            known[h] = fp  # a second use of the id in this batch is a replay of this one
            split.new.append(i)
        elif stored == fp:
            split.duplicate.append(i)
        else:
            split.conflict.append(i)
    return split


def _results(split: _Split, batch: _Batch, version: int) -> dict[int, EventResult]:
    """The result of each of a settled user's events, at the user's version after the round."""
    results = {i: EventResult(Outcome.APPLIED, version) for i in split.new}
    results.update((i, EventResult(Outcome.DUPLICATE, version)) for i in split.duplicate)
    results.update(
        (i, EventResult(Outcome.REJECTED, version, RejectReason.CONFLICTING_REPLAY,
                        f"event_id {batch.events[i].event_id!r} was already used for a "
                        "different event"))
        for i in split.conflict)
    return results


@dataclass(frozen=True)
class CachedState:
    """The record this process last wrote for a user, to write the next events without reading
    first. The write script compares the header with Redis, so a stale entry costs one round
    trip and a re-read, never a lost update."""

    record: UserRecord


class UserStateCache:
    """A bounded LRU of CachedState, shared by the tenants of a process (keys are full Redis
    keys, so tenants never collide). Thread-safe."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._entries: OrderedDict[str, CachedState] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: str) -> CachedState | None:
        """The entry for a user's record key, or None."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                self.misses += 1
                return None
            self._entries.move_to_end(key)
            self.hits += 1
            return entry

    def put(self, key: str, entry: CachedState) -> None:
        """Remember an entry, evicting the least recently used beyond capacity."""
        if self.capacity <= 0:
            return
        with self._lock:
            self._entries[key] = entry
            self._entries.move_to_end(key)
            while len(self._entries) > self.capacity:
                self._entries.popitem(last=False)

    def discard(self, key: str) -> None:
        """Forget a user (its state changed in a way this process did not compute)."""
        with self._lock:
            self._entries.pop(key, None)

    def __len__(self) -> int:
        return len(self._entries)


class UserStore:
    """Reads and writes user state. A user's behaviour state is one record (user_record.py);
    every write replaces it with a Lua compare-and-set on its header, so two server processes
    writing the same user never lose each other's updates."""

    def __init__(self, client: redis.Redis, interest: InterestFunction, window_size: int,
                 dedupe_ttl_s: int, popularity_half_life_s: float, user_ttl_s: int = 0,
                 keys: KeySpace = DEFAULT_KEYS, cache: UserStateCache | None = None,
                 event_log_maxlen: int = 0) -> None:
        self.redis = client
        # Each acknowledged event is also appended to the user's capped log stream, in the
        # write's own script (so the log never misses an acked event); 0 = no log.
        self.event_log_maxlen = max(event_log_maxlen, 0)
        self.keys = keys
        self.cache = cache if cache is not None and cache.capacity > 0 else None
        self.user_ttl_s = user_ttl_s
        self._window_setting = window_size
        self.set_interest(interest)
        self.dedupe_ttl_ms = dedupe_ttl_s * 1000
        self.popularity_half_life_ms = popularity_half_life_s * 1000.0
        lua = Path(__file__).parent / "lua"
        single = (lua / "write_record.lua").read_text()
        self._write = client.register_script(single)
        # On a single Redis, one call writes every user of a batch and counts the written
        # events' popularity: write_records.lua applies the same script as a function per user
        # (its KEYS and ARGV shadowed by that user's slices). A cluster refuses keys of several
        # slots in one script, so there each user keeps its own call (ScriptBatch, one pipeline
        # a node) and popularity follows in another.
        self._write_many = None if is_cluster(client) else client.register_script(
            "local function write_one(KEYS, ARGV)\n" + single + "\nend\n"
            + (lua / "write_records.lua").read_text())
        self._bump = client.register_script((lua / "bump_popularity.lua").read_text())

    def set_interest(self, interest: InterestFunction) -> None:
        """Write with another interest function from now on (a published model switch). A
        write already under way finishes with the function it started with, and labels its
        vector with that function's version (_apply reads `self.interest` once)."""
        # The window must hold at least the history the interest function reads.
        self.window_size = max(self._window_setting, interest.history_length)
        self.interest = interest

    @property
    def model_id(self) -> str:
        """The version written next to the vectors this store writes now."""
        return self.interest.version

    # ---- record reads -------------------------------------------------------------------

    def _load(self, users: Sequence[UserKeys], with_concepts: bool = False,
              format1: Sequence[bool] | bool = True) -> list[_Loaded]:
        """Read users' records (and concepts) with one MGET. Where `format1` is true for a user
        whose record is missing, format 1 is looked for too (one more round trip, only for
        those; converted in memory, and the first write stores the conversion). The write path
        skips that look-up: its script reports a format-1 user instead (WRITE_FORMAT1)."""
        look = [format1] * len(users) if isinstance(format1, bool) else list(format1)
        if not users:
            return []
        stride = 2 if with_concepts else 1
        names = [key for keys in users
                 for key in ((keys.record, keys.concepts) if with_concepts else (keys.record,))]
        # One command for the lot on a single Redis; a cluster client splits it by slot.
        values = (self.redis.mget_nonatomic(names) if is_cluster(self.redis)
                  else self.redis.mget(names))
        loaded: list[_Loaded] = []
        missing: list[int] = []
        for n, check in enumerate(look):
            raw = values[stride * n]
            concepts = values[stride * n + 1] if with_concepts else None
            if raw:
                record = UserRecord.decode(raw)
                loaded.append(_Loaded(record, record.header(), "", concepts))
            else:
                loaded.append(_Loaded(UserRecord(), b"", "", concepts))
                if check:
                    missing.append(n)
        if missing:
            pipe = self.redis.pipeline(transaction=False)
            for n in missing:
                pipe.exists(users[n].state)
            convert = [n for n, found in zip(missing, pipe.execute(), strict=True) if found]
            if convert:
                self._convert_format1([users[n] for n in convert],
                                      [loaded[n] for n in convert])
        return loaded

    def _convert_format1(self, users: Sequence[UserKeys], loaded: Sequence[_Loaded]) -> None:
        pipe = self.redis.pipeline(transaction=False)
        for keys in users:
            pipe.hgetall(keys.state)
            pipe.lrange(keys.window, 0, -1)
            pipe.smembers(keys.seen)
            pipe.hgetall(keys.event_ids)
            pipe.zrange(keys.event_times, 0, -1, withscores=True)
        replies = pipe.execute()
        for n, target in enumerate(loaded):
            state, window, seen, ids, times = replies[5 * n:5 * n + 5]
            if not state:  # deleted between the two reads: a new user
                continue
            target.record = from_format1(state, window, seen, ids, times)
            target.format1_mark = (f"{int(state.get(b'v') or 0)}:"
                                   f"{(state.get(b'e') or b'').decode()}")

    # ---- writes -------------------------------------------------------------------------

    def apply_events(self, events: Sequence[EventRecord],
                     item_vector: Callable[[str], np.ndarray]) -> list[EventResult]:
        """Apply a batch (any mix of users); one result per event, in order.

        Events must already be validated and refer to known items. Duplicates (same id, same
        payload) are reported, conflicting replays rejected, and the rest applied atomically per
        user; the write script publishes each changed user on its change channel. Raises redis
        errors when Redis is unreachable: then nothing was acknowledged.
        """
        pending: dict[str, _Pending] = {}
        for i, ev in enumerate(events):
            p = pending.get(ev.user_id)
            if p is None:
                p = pending[ev.user_id] = _Pending(ev.user_id, self.keys.user(ev.user_id), [])
            p.indices.append(i)
        batch = _Batch(events, [fingerprint_bits(ev.fingerprint()) for ev in events],
                       [event_id_hash(ev.event_id) for ev in events], now_ms(), item_vector)
        results: dict[int, EventResult] = {}
        todo = list(pending.values())
        for _attempt in range(MAX_CAS_ATTEMPTS):
            if not todo:
                break
            settled, todo = self._attempt(todo, batch)
            results.update(settled)
        if todo:
            raise Aborted(f"{len(todo)} user(s) kept changing concurrently; retry the batch")
        return [results[i] for i in range(len(events))]

    def _attempt(self, todo: list[_Pending],
                 batch: _Batch) -> tuple[dict[int, EventResult], list[_Pending]]:
        """One optimistic round for the given users: the results (by event index) of the users
        it settled, and the users to retry.

        Users this process wrote last (in the cache) are written without a read: the script
        compares the cached header with Redis and refuses a moved user, which sends it through
        the read path on the retry."""
        loaded = self._read(todo)
        results: dict[int, EventResult] = {}
        writes: list[tuple[_Pending, _Split, UserRecord]] = []
        calls: list[_Write] = []
        for p in todo:
            state = loaded[p.user_id]
            split = _split(p, state.record, batch)
            if not split.new:  # nothing to write: settled at the version read
                results.update(_results(split, batch, state.record.version))
                continue
            calls.append(self._apply(p, state, split.new, batch))
            writes.append((p, split, state.record))
        if not writes:
            return results, []
        check_waiting()  # a caller that gave up while we read must see no late write
        retry = []
        for (p, split, record), reply in zip(writes, self._run_writes(calls), strict=True):
            if reply == WRITTEN:
                self._remember(p.keys.record, record)
                results.update(_results(split, batch, record.version))
            else:  # the user moved, or is in format 1: re-read and retry
                self._remember(p.keys.record, None)
                retry.append(replace(p, format1=p.format1 or reply == WRITE_FORMAT1))
        return results, retry

    def _read(self, todo: Sequence[_Pending]) -> dict[str, _Loaded]:
        """Each user's record by user id: a copy of the cached one, else read from Redis."""
        loaded: dict[str, _Loaded] = {}
        if self.cache is not None:
            for p in todo:
                entry = self.cache.get(p.keys.record)
                if entry is not None:
                    loaded[p.user_id] = _Loaded(entry.record.copy(), entry.record.header())
        to_read = [p for p in todo if p.user_id not in loaded]
        for p, state in zip(to_read, self._load([p.keys for p in to_read],
                                                format1=[p.format1 for p in to_read]),
                            strict=True):
            loaded[p.user_id] = state
        return loaded

    def _apply(self, p: _Pending, state: _Loaded, new: Sequence[int], batch: _Batch) -> _Write:
        """The write of a user's new events: updates state.record (this round's own copy) with
        them and returns the compare-and-set write of it against the header read."""
        events, record = batch.events, state.record
        # One read of the function: a model switch during this write must not make it compute
        # with one model and label the vector with another.
        interest = self.interest
        acc, t_ref = record.vector, record.t_ref
        if acc is not None and record.model != interest.version:
            # Vectors of another model live in another space (maybe of another dimension):
            # rebuild the accumulator from the stored window with this model's item vectors.
            log.info("user %s: interest vector from another model, rebuilding it from the "
                     "window", p.user_id)
            acc, t_ref = self.rebuild(record.recent(self.window_size), batch.item_vector,
                                      interest)
        items = [WeightedItem(batch.item_vector(events[i].item_id),
                              event_weight(events[i].type, events[i].value),
                              batch.timestamp_ms(i), events[i].item_id, events[i].type)
                 for i in new]
        history = [HistoryEntry(item, EventType(etype), ts) for item, etype, ts
                   in record.history(interest.history_length)] \
            if interest.history_length else []
        acc, t_ref = interest.update(acc, t_ref, history, items)
        record.vector, record.t_ref, record.model = acc, t_ref, interest.version
        record.version += 1
        record.epoch = record.epoch or new_epoch()
        record.applied += len(new)
        record.updated_ms = batch.received_ms
        record.add_events(
            [NewEvent(events[i].event_id, batch.id_hashes[i], batch.fingerprints[i],
                      events[i].item_id, int(events[i].type), events[i].value,
                      batch.timestamp_ms(i)) for i in new],
            batch.received_ms, self.window_size, batch.received_ms - self.dedupe_ttl_ms)
        return _Write(p.keys.all(), state.expected, record.encode(), state.format1_mark,
                      self.keys.channel(p.user_id),
                      self._popularity([(events[i].item_id, batch.timestamp_ms(i))
                                        for i in new]),
                      [x for i in new for x in _log_values(events[i], batch.timestamp_ms(i))]
                      if self.event_log_maxlen else [])

    def rebuild(self, recent: Sequence[dict], item_vector: Callable[[str], np.ndarray],
                interest: InterestFunction | None = None) -> tuple[np.ndarray | None, int]:
        """(accumulator, t_ref) of an interest function (default: this store's current one)
        over a stored window (`recent`: UserRecord.recent's dicts, newest first), with the
        current item vectors; (None, 0) for an empty window.

        For a user whose stored vector another model made: the vector lives in another space,
        so it is recomputed, never read. Only the window is stored, so events older than it
        (window_size) no longer count.
        """
        events = [e for e in reversed(recent) if e["i"]]  # oldest first
        if not events:
            return None, 0
        items = [WeightedItem(item_vector(e["i"]), event_weight(EventType(e["t"]), e["v"]),
                              int(e["ts"]), e["i"], EventType(e["t"])) for e in events]
        return (interest or self.interest).update(None, 0, [], items)

    def _remember(self, key: str, record: UserRecord | None) -> None:
        """Cache the record this process just wrote for a user; None forgets the user."""
        if self.cache is None:
            return
        if record is None:
            self.cache.discard(key)
        else:
            self.cache.put(key, CachedState(record))

    def _run_writes(self, calls: list[_Write]) -> list[int]:
        """write_record.lua for every call, and the popularity of the events of every call that
        wrote, in one round trip on a single Redis (two on a cluster); one reply per call."""
        if self._write_many is not None:  # write_records.lua's compact layout
            keys: list[str] = []
            args: list[bytes | str | int | float] = [self.user_ttl_s, self.event_log_maxlen]
            for c in calls:
                # The format-1 keys only where the script may read them: no record yet.
                own = c.keys if c.expected == b"" else c.keys[:3]
                keys += own
                args += [len(own), c.expected, c.record, c.format1_mark, c.channel,
                         len(c.popularity) // 2, *c.popularity, len(c.log) // 5, *c.log]
            keys.append(self.keys.popularity)
            return [int(r) for r in self._write_many(keys=keys, args=args)]
        batch = ScriptBatch(self.redis, self._write)
        for c in calls:
            batch.add(c.keys, c.script_args(self.user_ttl_s, self.event_log_maxlen))
        replies = [int(r) for r in batch.execute()]
        written = [a for c, r in zip(calls, replies, strict=True) if r == WRITTEN
                   for a in c.popularity]
        if written:
            self._bump(keys=[self.keys.popularity], args=written)
        return replies

    def _popularity(self, applied: list[tuple[str, int]]) -> list[float | str]:
        """(increment, item id) pairs, flat, of forward-decayed counts: each event adds
        2^((t - epoch)/half_life), so newer events count more and scores never need
        rewriting. Popularity is a cold-start prior."""
        increments: dict[str, float] = {}
        for item_id, ts in applied:
            exponent = max(min((ts - POPULARITY_EPOCH_MS) / self.popularity_half_life_ms, 900.0),
                           -900.0)
            increments[item_id] = increments.get(item_id, 0.0) + 2.0 ** exponent
        return [x for item_id, inc in increments.items() for x in (inc, item_id)]

    def store_concepts(self, user_id: str,
                       update: Callable[[bytes | None], bytes]) -> int:
        """Read-modify-write the user's concepts; bumps the user's version. `update` may be
        called more than once (once per attempt)."""
        keys = self.keys.user(user_id)
        for _attempt in range(MAX_CAS_ATTEMPTS):
            (state,) = self._load([keys], with_concepts=True)
            new = update(state.concepts)
            record = state.record
            record.version += 1
            record.epoch = record.epoch or new_epoch()
            reply = self._write(keys=keys.all(), args=[
                state.expected, record.encode(), self.user_ttl_s, state.format1_mark, 1, new])
            if int(reply) == WRITTEN:
                self._remember(keys.record, record)
                return record.version
            self._remember(keys.record, None)
        raise Aborted(f"user {user_id!r} kept changing concurrently; retry")

    def delete_user(self, user_id: str) -> int:
        """Erase every key of the user; returns how many existed."""
        keys = self.keys.user(user_id)
        if self.cache is not None:
            self.cache.discard(keys.record)
        return int(self.redis.delete(*keys.all()))

    # ---- reads --------------------------------------------------------------------------

    def snapshot(self, user_id: str) -> UserSnapshot:
        """Everything about one user: one MGET (and one EXISTS for a user with no record)."""
        (state,) = self._load([self.keys.user(user_id)], with_concepts=True)
        record = state.record
        return UserSnapshot(user_id=user_id, version=record.version, accumulator=record.vector,
                            model=record.model, event_count=record.applied,
                            recent=record.recent(self.window_size),
                            consumed=record.consumed(), concepts_json=state.concepts)

    def popular(self, limit: int) -> list[tuple[str, float]]:
        """The most popular items with their decayed counts."""
        rows = self.redis.zrevrange(self.keys.popularity, 0, max(limit - 1, 0), withscores=True)
        return [(item.decode(), float(score)) for item, score in rows]


__all__ = ["CachedState", "UserStateCache", "UserStore", "UserSnapshot", "pack_vector",
           "unpack_vector", "now_ms"]
