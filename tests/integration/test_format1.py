"""Users stored in record format 1 (five keys per user) keep working and move to format 2 on
their first write, with nothing they had lost."""

from __future__ import annotations

import json
from pathlib import Path

import interest_server.state
import numpy as np
import redis
from interest.v1 import interest_pb2 as pb
from interest.v1 import interest_pb2_grpc
from interest_server.api.app import RunningServer
from interest_server.events import EventRecord, EventType
from interest_server.state.keys import item_key, user_keys
from interest_server.state.user_record import UserRecord

from .conftest import event

T0 = 1_790_000_000_000


def _fingerprint(ev: pb.Event) -> str:
    return EventRecord(ev.event_id, ev.user_id, ev.item_id, EventType(ev.type),
                       ev.value if ev.HasField("value") else None, ev.timestamp_ms).fingerprint()


def store_format1(client: redis.Redis, user_id: str, events: list[pb.Event], version: int,
                  model: str = "decayed-average") -> np.ndarray:
    """Write a user as the format-1 script did; returns the stored accumulator."""
    keys = user_keys(user_id)
    acc = sum(np.frombuffer(client.hget(item_key(ev.item_id), "vec"), "<f4") for ev in events)
    acc = np.asarray(acc, np.float32)
    client.hset(keys.state, mapping={"v": version, "vec": acc.tobytes(), "t": T0 + 10,
                                     "n": len(events), "m": model, "u": T0 + 20,
                                     "e": "00112233aabbccdd"})
    for n, ev in enumerate(events):
        client.lpush(keys.window, json.dumps(
            {"e": ev.event_id, "i": ev.item_id, "t": ev.type, "v": None, "ts": ev.timestamp_ms},
            separators=(",", ":")))
        client.sadd(keys.seen, ev.item_id)
        client.hset(keys.event_ids, ev.event_id, _fingerprint(ev))
        client.zadd(keys.event_times, {ev.event_id: T0 + n})
    return acc


def test_a_format1_user_is_read_then_converted_by_its_next_write(
        server: RunningServer, stub: interest_pb2_grpc.InterestServiceStub,
        redis_client: redis.Redis, catalog: list[pb.Item]) -> None:
    old = [event("f1", "legacy", "1", ts=T0), event("f2", "legacy", "2", ts=T0 + 10)]
    acc = store_format1(redis_client, "legacy", old, version=4,
                        model=server.engine.model.version)
    keys = user_keys("legacy")

    state = stub.GetUserState(pb.GetUserStateRequest(user_id="legacy", include_vector=True),
                              timeout=10)
    assert (state.version, state.event_count, state.consumed_count) == (4, 2, 2)
    assert [(e.event_id, e.item_id, e.timestamp_ms) for e in state.recent_events] == [
        ("f2", "2", T0 + 10), ("f1", "1", T0)]
    assert not redis_client.exists(keys.record), "a read converts in memory only"

    acks = stub.IngestEvents(pb.EventBatch(events=[
        old[0],                                   # a replay of a format-1 event
        event("f2", "legacy", "3", ts=T0 + 10),   # its id, another payload
        event("f3", "legacy", "4", ts=T0 + 10),   # new
    ]), timeout=10).acks
    assert [a.status for a in acks] == [pb.ACK_STATUS_DUPLICATE, pb.ACK_STATUS_REJECTED,
                                        pb.ACK_STATUS_APPLIED]
    assert acks[1].reason == pb.REJECT_REASON_CONFLICTING_REPLAY
    assert [a.user_version for a in acks] == [5, 5, 5]

    # Converted: one record (and the event log of the new event), the five format-1 keys gone,
    # the accumulator carried on.
    assert [k for k in keys.all() if redis_client.exists(k)] == [keys.record, keys.log]
    assert [f[b"e"] for _id, f in redis_client.xrange(keys.log)] == [b"f3"]
    record = UserRecord.decode(redis_client.get(keys.record))
    assert (record.version, record.applied, record.epoch.hex()) == (5, 3, "00112233aabbccdd")
    item4 = np.frombuffer(redis_client.hget(item_key("4"), "vec"), "<f4")
    np.testing.assert_allclose(record.vector, acc + 1.5 * item4, rtol=1e-5, atol=1e-6)
    state = stub.GetUserState(pb.GetUserStateRequest(user_id="legacy"), timeout=10)
    assert [e.event_id for e in state.recent_events] == ["f3", "f2", "f1"]
    assert (state.version, state.event_count, state.consumed_count) == (5, 3, 3)


def test_stating_concepts_converts_a_format1_user(
        stub: interest_pb2_grpc.InterestServiceStub, redis_client: redis.Redis,
        catalog: list[pb.Item]) -> None:
    store_format1(redis_client, "legacy-c", [event("c1", "legacy-c", "1", ts=T0)], version=2)
    resp = stub.EncodeInterest(pb.EncodeInterestRequest(user_id="legacy-c",
                                                        text="I like comedies"), timeout=30)
    assert resp.stored
    keys = user_keys("legacy-c")
    assert sorted(k for k in keys.all() if redis_client.exists(k)) == sorted(
        [keys.record, keys.concepts])
    state = stub.GetUserState(pb.GetUserStateRequest(user_id="legacy-c"), timeout=10)
    assert (state.version, state.event_count) == (3, 1) and state.concepts
    # The converted record still knows c1: a replay is a duplicate.
    ack = stub.IngestEvents(pb.EventBatch(events=[event("c1", "legacy-c", "1", ts=T0)]),
                            timeout=10).acks[0]
    assert ack.status == pb.ACK_STATUS_DUPLICATE


def test_a_format1_user_changed_meanwhile_is_read_again(
        stub: interest_pb2_grpc.InterestServiceStub, redis_client: redis.Redis,
        catalog: list[pb.Item]) -> None:
    """The write script compares the format-1 version and epoch it converted from: a format-1
    state that moved (an old server still writing it) is never overwritten from a stale read."""
    store_format1(redis_client, "legacy-m", [event("m1", "legacy-m", "1", ts=T0)], version=2)
    script = redis_client.register_script(
        (Path(interest_server.state.__file__).parent / "lua" / "write_record.lua").read_text())
    keys = user_keys("legacy-m")
    stale = UserRecord(version=3, epoch=b"\x00\x11\x22\x33\xaa\xbb\xcc\xdd").encode()
    assert script(keys=keys.all(), args=[b"", stale, 0, "1:00112233aabbccdd", 0, b""]) == 0
    # A writer that did not look for format 1 is told to (2) instead of writing over it.
    assert script(keys=keys.all(), args=[b"", stale, 0, "", 0, b""]) == 2
    assert redis_client.exists(keys.state) and not redis_client.exists(keys.record)
    assert script(keys=keys.all(), args=[b"", stale, 0, "2:00112233aabbccdd", 0, b""]) == 1
    assert not redis_client.exists(keys.state) and redis_client.exists(keys.record)
