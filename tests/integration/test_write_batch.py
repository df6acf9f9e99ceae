"""The store's write path against a real Redis: the many-user script call, and the cache."""

from __future__ import annotations

import numpy as np
import redis
from interest_server.events import EventRecord, EventType, Outcome, RejectReason
from interest_server.model.interest_model import DecayedAverageModel
from interest_server.state.keys import user_keys
from interest_server.state.user_record import UserRecord
from interest_server.state.user_store import (
    WRITE_FORMAT1,
    WRITTEN,
    UserStateCache,
    UserStore,
    _Write,
)


def test_one_call_writes_some_users_and_refuses_others(redis_client: redis.Redis) -> None:
    store = UserStore(redis_client, DecayedAverageModel(86400.0, dim=4), 50, 86400, 86400.0)
    assert store._write_many is not None, "a single Redis gets the many-user script"
    current = UserRecord(version=3, epoch=b"\x07" * 8, vector=np.ones(4, np.float32))
    redis_client.set(user_keys("moved").record, current.encode())
    redis_client.set(user_keys("kept").record, current.encode())
    redis_client.hset(user_keys("legacy").state, mapping={"v": 2, "e": "00"})
    stale = UserRecord(version=2, epoch=b"\x07" * 8)

    def call(user: str, expected: bytes, version: int) -> _Write:
        new = UserRecord(version=version, epoch=b"\x07" * 8, vector=np.zeros(4, np.float32))
        return _Write(user_keys(user).all(), expected, new.encode(), "", "",
                      [1.0, f"item-of-{user}", 0.5, "shared"])

    replies = store._run_writes([call("fresh", b"", 1), call("moved", stale.header(), 3),
                                 call("legacy", b"", 3), call("kept", current.header(), 4)])
    assert replies == [WRITTEN, 0, WRITE_FORMAT1, WRITTEN]
    # Only the written users' events count towards popularity.
    assert dict(redis_client.zrange("pop", 0, -1, withscores=True)) == {
        b"item-of-fresh": 1.0, b"item-of-kept": 1.0, b"shared": 1.0}
    assert UserRecord.decode(redis_client.get(user_keys("fresh").record)).version == 1
    assert UserRecord.decode(redis_client.get(user_keys("moved").record)).version == 3
    assert not redis_client.exists(user_keys("legacy").record)
    assert redis_client.hget(user_keys("legacy").state, "v") == b"2"
    assert UserRecord.decode(redis_client.get(user_keys("kept").record)).version == 4


class _RecordingModel(DecayedAverageModel):
    """The decayed average, remembering the history each update was given."""

    history_length = 3

    def __init__(self) -> None:
        super().__init__(86400.0, dim=4)
        self.histories: list[list[str]] = []

    def update(self, acc, t_ref, history, new):  # noqa: ANN001, ANN201 - the protocol's types
        self.histories.append([h.item_id for h in history])
        return super().update(acc, t_ref, history, new)


def test_a_cached_user_gets_the_same_history_as_a_read_one(redis_client: redis.Redis) -> None:
    """The cache holds whole records, so a model that reads the user's recent events (the
    learned one) can use it too: the history must equal what a fresh read gives."""
    def run(cache_size: int, user: str) -> list[list[str]]:
        model = _RecordingModel()
        cache = UserStateCache(cache_size)
        store = UserStore(redis_client, model, 50, 86400, 86400.0, cache=cache)
        vec = np.ones(4, np.float32)
        for n in range(5):
            store.apply_events([EventRecord(f"{user}-{n}", user, f"i{n}", EventType.LIKE, None,
                                            1_800_000_000_000 + n)], lambda _item: vec)
        assert cache.hits == (4 if cache_size else 0)
        return model.histories

    expected = [[], ["i0"], ["i0", "i1"], ["i0", "i1", "i2"], ["i1", "i2", "i3"]]
    assert run(0, "read-each-time") == expected
    assert run(100, "cached") == expected


def _like(event_id: str, user: str, item: str) -> EventRecord:
    return EventRecord(event_id, user, item, EventType.LIKE, None, 1_800_000_000_000)


def test_one_batch_sorts_new_duplicate_and_conflicting_events(
        redis_client: redis.Redis) -> None:
    """Results come back in event order, each at its user's version after the batch: a
    conflicting replay of a user that was written reports the new version too."""
    store = UserStore(redis_client, DecayedAverageModel(86400.0, dim=4), 50, 86400, 86400.0,
                      cache=UserStateCache(100))
    vec = np.ones(4, np.float32)
    first = store.apply_events([_like("a1", "alice", "i1"), _like("b1", "bob", "i1")],
                               lambda _item: vec)
    assert [(r.outcome, r.user_version) for r in first] == [(Outcome.APPLIED, 1)] * 2
    second = store.apply_events([
        _like("a1", "alice", "i1"),  # a replay of a stored event
        _like("a2", "alice", "i2"),  # new
        _like("a1", "alice", "i9"),  # the stored id with another payload
        _like("b1", "bob", "i1"),  # bob has nothing new: settled at the version read
        _like("a2", "alice", "i2"),  # a replay of an event earlier in this batch
        _like("b1", "bob", "i7"),
    ], lambda _item: vec)
    assert [(r.outcome, r.user_version) for r in second] == [
        (Outcome.DUPLICATE, 2), (Outcome.APPLIED, 2), (Outcome.REJECTED, 2),
        (Outcome.DUPLICATE, 1), (Outcome.DUPLICATE, 2), (Outcome.REJECTED, 1)]
    assert second[2].reason == second[5].reason == RejectReason.CONFLICTING_REPLAY
    assert "'a1'" in second[2].message and "'b1'" in second[5].message
    stored = UserRecord.decode(redis_client.get(user_keys("alice").record))
    assert (stored.version, stored.applied) == (2, 2)


def test_a_stale_cached_record_is_read_again_and_applied(redis_client: redis.Redis) -> None:
    """Another process wrote the user after this one cached it: the compare-and-set refuses
    the cached header, and the retry reads the record and applies on top of it."""
    vec = np.ones(4, np.float32)
    cache = UserStateCache(100)
    mine = UserStore(redis_client, DecayedAverageModel(86400.0, dim=4), 50, 86400, 86400.0,
                     cache=cache)
    other = UserStore(redis_client, DecayedAverageModel(86400.0, dim=4), 50, 86400, 86400.0)
    mine.apply_events([_like("c1", "carol", "i1")], lambda _item: vec)
    other.apply_events([_like("c2", "carol", "i2")], lambda _item: vec)
    (result,) = mine.apply_events([_like("c3", "carol", "i3")], lambda _item: vec)
    assert (result.outcome, result.user_version) == (Outcome.APPLIED, 3)
    assert cache.hits == 1  # the stale entry was used once, then the record was read
    stored = UserRecord.decode(redis_client.get(user_keys("carol").record))
    assert (stored.version, stored.applied) == (3, 3)
    entry = cache.get(user_keys("carol").record)
    assert entry is not None and entry.record.version == 3
