"""Exactly once under retries: every event sent 1-3 times, over two concurrent streams to two
server processes sharing one Redis, is applied once; a conflicting replay changes nothing."""

from __future__ import annotations

import collections
import random
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest
import redis
from interest.v1 import interest_pb2 as pb
from interest.v1 import interest_pb2_grpc
from interest_server.config import Settings
from interest_server.ops.redis_launcher import EmbeddedRedis
from interest_server.state.keys import POPULARITY, user_key_pattern
from interest_server.state.user_store import POPULARITY_EPOCH_MS

from .conftest import (
    ITEM_IDS,
    ServerProcess,
    batches,
    catalog_items,
    check_all,
    connect,
    event,
    make_events,
    new_store,
    start_server,
)

UNIQUE = 3000
USERS = [f"once-{n}" for n in range(6)]


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory
         ) -> Iterator[tuple[EmbeddedRedis, ServerProcess, ServerProcess]]:
    store = new_store(Path(tmp_path_factory.mktemp("once")) / "redis", appendfsync="everysec")
    procs: list[ServerProcess] = []
    try:
        starters = [threading.Thread(target=lambda: procs.append(start_server(store.url)))
                    for _ in range(2)]
        for t in starters:
            t.start()
        for t in starters:
            t.join()
        assert len(procs) == 2, "both server processes must start"
        a, b = procs
        with grpc.insecure_channel(a.target) as ch_a, grpc.insecure_channel(b.target) as ch_b:
            interest_pb2_grpc.InterestServiceStub(ch_a).UpsertItems(
                iter([pb.UpsertItemsRequest(items=catalog_items())]), timeout=60)
            stub_b = interest_pb2_grpc.InterestServiceStub(ch_b)
            deadline = time.monotonic() + 5
            while len(stub_b.Recommend(pb.RecommendRequest(user_id="probe", k=30),
                                       timeout=10).items) < 30:
                assert time.monotonic() < deadline, "B never saw A's catalog"
                time.sleep(0.05)
        yield store, a, b
    finally:
        for p in procs:
            p.proc.terminate()  # both drain at once
        for p in procs:
            p.stop()
        store.stop()


def _stream(target: str, messages: list[pb.EventBatch], out: list[pb.EventAck]) -> None:
    with grpc.insecure_channel(target) as channel:
        stub = interest_pb2_grpc.InterestServiceStub(channel)
        for ack in stub.StreamEvents(iter(messages), timeout=120):
            out.extend(ack.acks)


def _user_dump(client: redis.Redis, user_id: str) -> dict[bytes, bytes]:
    """Every key of the user, serialised: any change to any of them shows."""
    return {key: client.dump(key) for key in client.scan_iter(match=user_key_pattern(user_id))}


def test_each_event_applied_exactly_once(pair) -> None:  # noqa: ANN001
    store, a, b = pair
    rng = random.Random(5)
    events = make_events(rng, UNIQUE, USERS, prefix="once")
    to_a: list[pb.Event] = []
    to_b: list[pb.Event] = []
    for ev in events:
        for _ in range(rng.randint(1, 3)):
            (to_a if rng.random() < 0.5 else to_b).append(ev)
    rng.shuffle(to_a)
    rng.shuffle(to_b)
    acks_a: list[pb.EventAck] = []
    acks_b: list[pb.EventAck] = []
    streams = [threading.Thread(target=_stream, args=(a.target, batches(to_a, 50, "a"), acks_a)),
               threading.Thread(target=_stream, args=(b.target, batches(to_b, 50, "b"), acks_b))]
    for t in streams:
        t.start()
    for t in streams:
        t.join(timeout=180)
    sent = len(to_a) + len(to_b)
    assert len(acks_a) == len(to_a) and len(acks_b) == len(to_b), "a stream did not finish"

    statuses = collections.Counter(ack.status for ack in acks_a + acks_b)
    applied = collections.Counter(ack.event_id for ack in acks_a + acks_b
                                  if ack.status == pb.ACK_STATUS_APPLIED)
    assert set(statuses) <= {pb.ACK_STATUS_APPLIED, pb.ACK_STATUS_DUPLICATE}, statuses
    assert statuses[pb.ACK_STATUS_APPLIED] == UNIQUE
    assert set(applied.values()) == {1} and len(applied) == UNIQUE
    assert statuses[pb.ACK_STATUS_DUPLICATE] == sent - UNIQUE

    client = connect(store.url)
    try:
        checked = check_all(client, events, USERS)
        # Popularity counts each event once too (forward-decayed, as user_store computes it).
        half_life_ms = Settings().popularity_half_life_s * 1000.0
        want = dict.fromkeys(ITEM_IDS, 0.0)
        for ev in events:
            want[ev.item_id] += 2.0 ** ((ev.timestamp_ms - POPULARITY_EPOCH_MS) / half_life_ms)
        got = {k.decode(): v for k, v in client.zrange(POPULARITY, 0, -1, withscores=True)}
        items = sorted(i for i in want if want[i])
        np.testing.assert_allclose([got.get(i, 0.0) for i in items], [want[i] for i in items],
                                   rtol=1e-9)

        # A replay of an applied id with a different payload is rejected and changes nothing.
        victims = rng.sample(events, 6)
        before = {u: _user_dump(client, u) for u in {v.user_id for v in victims}}
        pop_before = client.dump(POPULARITY)
        conflicts = [event(v.event_id, v.user_id,
                           next(i for i in ITEM_IDS if i != v.item_id), kind=v.type,
                           ts=v.timestamp_ms, value=v.value if v.HasField("value") else None)
                     for v in victims]
        rejected: list[pb.EventAck] = []
        with grpc.insecure_channel(a.target) as ch_a, grpc.insecure_channel(b.target) as ch_b:
            rejected += interest_pb2_grpc.InterestServiceStub(ch_a).IngestEvents(
                pb.EventBatch(events=conflicts[:3]), timeout=10).acks
            for ack in interest_pb2_grpc.InterestServiceStub(ch_b).StreamEvents(
                    iter([pb.EventBatch(batch_id="x", events=conflicts[3:])]), timeout=10):
                rejected += ack.acks
        assert [(r.status, r.reason) for r in rejected] == \
            [(pb.ACK_STATUS_REJECTED, pb.REJECT_REASON_CONFLICTING_REPLAY)] * len(conflicts)
        assert {u: _user_dump(client, u) for u in before} == before
        assert client.dump(POPULARITY) == pop_before
        check_all(client, events, USERS)
    finally:
        client.close()
    print(f"{UNIQUE} unique events sent {sent} times ({len(to_a)} to A, {len(to_b)} to B): "
          f"APPLIED {statuses[pb.ACK_STATUS_APPLIED]}, DUPLICATE "
          f"{statuses[pb.ACK_STATUS_DUPLICATE]}; {checked} events checked against the oracle; "
          f"{len(conflicts)} conflicting replays rejected, state unchanged")
