"""Per-user interest state in Redis: atomic, idempotent event application and state reads."""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import redis

from .caller import check_waiting
from .errors import Aborted
from .events import EventRecord, EventResult, EventType, Outcome, RejectReason
from .interest_model import HistoryEntry, InterestFunction, WeightedItem, event_weight
from .keys import DEFAULT_KEYS, KeySpace, UserKeys
from .redis_conn import ScriptBatch

log = logging.getLogger(__name__)

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


@dataclass(frozen=True)
class CachedState:
    """What this process last wrote for a user: enough to write the next events without reading
    first. The write script checks (version, epoch) against Redis, so a stale entry costs one
    round trip and a re-read, never a lost update."""

    version: int
    epoch: str
    accumulator: np.ndarray
    t_ref: int


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
        """The entry for a user's state key, or None."""
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
    """Reads and writes user state. Every write is one Lua script guarded by the state version,
    so two server processes writing the same user never lose each other's updates."""

    def __init__(self, client: redis.Redis, interest: InterestFunction, window_size: int,
                 dedupe_ttl_s: int, popularity_half_life_s: float, user_ttl_s: int = 0,
                 keys: KeySpace = DEFAULT_KEYS, cache: UserStateCache | None = None) -> None:
        self.redis = client
        self.keys = keys
        # The write-without-read path needs nothing but the accumulator: a model that reads
        # the user's recent history (the learned one) always reads first.
        self.cache = cache if cache is not None and cache.capacity > 0 and \
            interest.history_length == 0 else None
        self.user_ttl_s = user_ttl_s
        self.interest = interest
        self.model_id = interest.version
        # The window must hold at least the history the interest function reads.
        self.window_size = max(window_size, interest.history_length)
        self.dedupe_ttl_ms = dedupe_ttl_s * 1000
        self.popularity_half_life_ms = popularity_half_life_s * 1000.0
        source = (Path(__file__).parent / "lua" / "apply_events.lua").read_text()
        self._apply = client.register_script(source)

    # ---- writes -------------------------------------------------------------------------

    def apply_events(self, events: Sequence[EventRecord],
                     item_vector: Callable[[str], np.ndarray]) -> list[EventResult]:
        """Apply a batch (any mix of users); one result per event, in order.

        Events must already be validated and refer to known items. Duplicates (same id, same
        payload) are reported, conflicting replays rejected, and the rest applied atomically per
        user. Raises redis errors when Redis is unreachable: then nothing was acknowledged.
        """
        results: list[EventResult | None] = [None] * len(events)
        pending: dict[str, _Pending] = {}
        for i, ev in enumerate(events):
            pending.setdefault(ev.user_id, _Pending(ev.user_id, self.keys.user(ev.user_id), []))
            pending[ev.user_id].indices.append(i)
        received_ms = now_ms()
        fingerprints = [ev.fingerprint() for ev in events]  # once, whatever the retries
        applied_items: list[tuple[str, int]] = []
        todo = list(pending.values())
        for _attempt in range(MAX_CAS_ATTEMPTS):
            if not todo:
                break
            todo = self._attempt(todo, events, fingerprints, results, item_vector, received_ms,
                                 applied_items)
        if todo:
            raise Aborted(f"{len(todo)} user(s) kept changing concurrently; retry the batch")
        self._bump_popularity(applied_items)
        return [r for r in results if r is not None]

    def _attempt(self, todo: list[_Pending], events: Sequence[EventRecord],
                 fingerprints: Sequence[str], results: list[EventResult | None],
                 item_vector: Callable[[str], np.ndarray], received_ms: int,
                 applied_items: list[tuple[str, int]]) -> list[_Pending]:
        """One optimistic round for the given users; returns the users to retry.

        Users this process wrote last (in the cache) are written without a read: the script
        checks their (version, epoch) and that no event id is stored yet, and refuses
        otherwise, which sends the user through the read path on the retry."""
        history_length = self.interest.history_length
        stride = 3 if history_length else 2
        cached: dict[str, CachedState] = {}
        if self.cache is not None:
            for p in todo:
                entry = self.cache.get(p.keys.state)
                if entry is not None:
                    cached[p.user_id] = entry
        to_read = [p for p in todo if p.user_id not in cached]
        pipe = self.redis.pipeline(transaction=False)
        for p in to_read:
            pipe.hmget(p.keys.state, "v", "vec", "t", "m", "e")
            pipe.hmget(p.keys.event_ids, [events[i].event_id for i in p.indices])
            if history_length:
                pipe.lrange(p.keys.window, 0, history_length - 1)
        replies = pipe.execute() if to_read else []
        read_at = {p.user_id: n for n, p in enumerate(to_read)}

        writes: list[tuple[_Pending, list[int], list[int], np.ndarray, int]] = []
        batch = ScriptBatch(self.redis, self._apply)
        for p in todo:
            entry = cached.get(p.user_id)
            if entry is not None:
                version, epoch = entry.version, entry.epoch
                acc, t_ref, raw_m = entry.accumulator, entry.t_ref, self.model_id.encode()
                known: dict[str, str] = {}
            else:
                n = read_at[p.user_id]
                (raw_v, raw_vec, raw_t, raw_m, raw_e), stored_fps = (replies[stride * n],
                                                                     replies[stride * n + 1])
                version, epoch = int(raw_v or 0), (raw_e or b"").decode()
                acc, t_ref = unpack_vector(raw_vec), int(raw_t or 0)
                known = {events[i].event_id: fp.decode()
                         for i, fp in zip(p.indices, stored_fps, strict=True) if fp}
            new_idx, dup_idx = [], []
            for i in p.indices:
                ev = events[i]
                fp = fingerprints[i]
                if ev.event_id not in known:
                    known[ev.event_id] = fp
                    new_idx.append(i)
                elif known[ev.event_id] == fp:
                    dup_idx.append(i)
                else:
                    results[i] = EventResult(
                        Outcome.REJECTED, version, RejectReason.CONFLICTING_REPLAY,
                        f"event_id {ev.event_id!r} was already used for a different event")
            if not new_idx:
                for i in dup_idx:
                    results[i] = EventResult(Outcome.DUPLICATE, version)
                self._fix_conflict_versions(p, results, version)
                continue
            if acc is not None and (raw_m or b"").decode() != self.model_id:
                # Vectors of another model live in another space: start the accumulator over.
                log.warning("user %s: interest vector from another model, restarting it",
                            p.user_id)
                acc, t_ref = None, 0
            items = [WeightedItem(item_vector(events[i].item_id),
                                  event_weight(events[i].type, events[i].value),
                                  events[i].timestamp_ms or received_ms, events[i].item_id,
                                  events[i].type) for i in new_idx]
            history = [] if not history_length else [
                HistoryEntry(e["i"], EventType(e["t"]), e["ts"])
                for e in map(json.loads, reversed(replies[stride * read_at[p.user_id] + 2]))]
            acc, t_ref = self.interest.update(acc, t_ref, history, items)
            args: list[bytes | str | int] = [
                version, pack_vector(acc), t_ref, self.model_id, self.window_size, received_ms,
                received_ms - self.dedupe_ttl_ms, len(new_idx)]
            for i in new_idx:
                ev = events[i]
                args += [ev.event_id, fingerprints[i],
                         ev.window_entry(ev.timestamp_ms or received_ms), ev.item_id]
            args += [self.user_ttl_s, epoch, uuid.uuid4().hex[:16], 1 if entry else 0]
            batch.add(p.keys.all(), args)
            writes.append((p, new_idx, dup_idx, acc, t_ref))
        if not writes:
            return []
        check_waiting()  # a caller that gave up while we read must see no late write
        retry = []
        for (p, new_idx, dup_idx, acc, t_ref), reply in zip(writes, batch.execute(),
                                                            strict=True):
            new_version = int(reply[0])
            if new_version < 0:  # moved, or an id is stored already: re-read and retry
                if self.cache is not None:
                    self.cache.discard(p.keys.state)
                for i in p.indices:
                    results[i] = None
                retry.append(p)
                continue
            if self.cache is not None:
                self.cache.put(p.keys.state, CachedState(
                    new_version, reply[1].decode(), unpack_vector(pack_vector(acc)), t_ref))
            for i in new_idx:
                results[i] = EventResult(Outcome.APPLIED, new_version)
                applied_items.append((events[i].item_id, events[i].timestamp_ms or received_ms))
            for i in dup_idx:
                results[i] = EventResult(Outcome.DUPLICATE, new_version)
            self._fix_conflict_versions(p, results, new_version)
        return retry

    @staticmethod
    def _fix_conflict_versions(p: _Pending, results: list[EventResult | None],
                               version: int) -> None:
        for i in p.indices:
            r = results[i]
            if r is not None and r.outcome == Outcome.REJECTED:
                results[i] = EventResult(r.outcome, version, r.reason, r.message)

    def _bump_popularity(self, applied: list[tuple[str, int]]) -> None:
        """Forward-decayed counts: add 2^((t - epoch)/half_life), so newer events count more
        and scores never need rewriting. Best effort: popularity is a cold-start prior."""
        if not applied:
            return
        increments: dict[str, float] = {}
        for item_id, ts in applied:
            exponent = max(min((ts - POPULARITY_EPOCH_MS) / self.popularity_half_life_ms, 900.0),
                           -900.0)
            increments[item_id] = increments.get(item_id, 0.0) + 2.0 ** exponent
        pipe = self.redis.pipeline(transaction=False)
        for item_id, inc in increments.items():
            pipe.zincrby(self.keys.popularity, inc, item_id)
        pipe.execute()

    def store_concepts(self, user_id: str,
                       update: Callable[[bytes | None], bytes]) -> int:
        """Read-modify-write the user's concepts under WATCH; bumps the state version."""
        keys = self.keys.user(user_id)

        def txn(pipe: redis.client.Pipeline) -> None:
            current = pipe.get(keys.concepts)
            new = update(current)
            pipe.multi()
            pipe.set(keys.concepts, new)
            pipe.hincrby(keys.state, "v", 1)
            for key in keys.all():  # the inactivity clock restarts on every write
                if self.user_ttl_s > 0:
                    pipe.expire(key, self.user_ttl_s)
                else:
                    pipe.persist(key)

        if self.cache is not None:  # the version moves under the cached entry
            self.cache.discard(keys.state)
        result = self.redis.transaction(txn, keys.concepts, keys.state)
        return int(result[1])

    def delete_user(self, user_id: str) -> int:
        """Erase every key of the user; returns how many existed."""
        keys = self.keys.user(user_id)
        if self.cache is not None:
            self.cache.discard(keys.state)
        return int(self.redis.delete(*keys.all()))

    # ---- reads --------------------------------------------------------------------------

    def snapshot(self, user_id: str) -> UserSnapshot:
        """Everything about one user in one round trip."""
        keys = self.keys.user(user_id)
        pipe = self.redis.pipeline(transaction=False)
        pipe.hmget(keys.state, "v", "vec", "m", "n")
        pipe.lrange(keys.window, 0, -1)
        pipe.smembers(keys.seen)
        pipe.get(keys.concepts)
        (raw_v, raw_vec, raw_m, raw_n), window, seen, concepts = pipe.execute()
        snap = UserSnapshot(user_id=user_id, version=int(raw_v or 0),
                            accumulator=unpack_vector(raw_vec), model=(raw_m or b"").decode(),
                            event_count=int(raw_n or 0), concepts_json=concepts)
        snap.recent = [json.loads(entry) for entry in window]
        snap.consumed = {s.decode() for s in seen}
        return snap

    def popular(self, limit: int) -> list[tuple[str, float]]:
        """The most popular items with their decayed counts."""
        rows = self.redis.zrevrange(self.keys.popularity, 0, max(limit - 1, 0), withscores=True)
        return [(item.decode(), float(score)) for item, score in rows]


__all__ = ["CachedState", "UserStateCache", "UserStore", "UserSnapshot", "pack_vector",
           "unpack_vector", "now_ms"]
