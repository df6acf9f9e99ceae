"""StreamEvents writes the messages that have already arrived together, and still acks each one,
in order, with the outcome it would have had on its own.

Redis is paused while the stream starts, so the first message's write waits and the rest of the
stream is buffered behind it: that makes the coalescing deterministic, not a matter of timing.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import grpc
import pytest
import redis
from interest.v1 import interest_pb2 as pb
from interest.v1 import interest_pb2_grpc
from prometheus_client import REGISTRY

from .conftest import catalog_items, event

PAUSE_MS = 800


def writes_and_messages() -> tuple[float, float]:
    """(engine writes, messages written) so far, over every server of this process."""
    count = REGISTRY.get_sample_value("interest_stream_write_messages_count") or 0.0
    total = REGISTRY.get_sample_value("interest_stream_write_messages_sum") or 0.0
    return count, total


def stream_while_paused(stub: interest_pb2_grpc.InterestServiceStub, admin: redis.Redis,
                        batches: list[pb.EventBatch]) -> tuple[list[pb.EventBatchAck],
                                                               grpc.RpcError | None]:
    """Send every batch at once on one stream while Redis is paused; (acks, final error)."""
    sent = threading.Event()

    def requests() -> Iterator[pb.EventBatch]:
        yield from batches
        sent.set()

    admin.execute_command("CLIENT", "PAUSE", PAUSE_MS, "ALL")
    acks: list[pb.EventBatchAck] = []
    error = None
    try:
        for ack in stub.StreamEvents(requests(), timeout=30):
            acks.append(ack)
    except grpc.RpcError as exc:
        error = exc
    assert sent.is_set()
    return acks, error


@pytest.fixture
def stub_with_catalog(make_server) -> Iterator[interest_pb2_grpc.InterestServiceStub]:  # noqa: ANN001
    def start(**overrides: object) -> interest_pb2_grpc.InterestServiceStub:
        running = make_server(**overrides)
        channel = grpc.insecure_channel(running.target)
        channels.append(channel)
        stub = interest_pb2_grpc.InterestServiceStub(channel)
        stub.UpsertItems(iter([pb.UpsertItemsRequest(items=catalog_items())]), timeout=60)
        return stub

    channels: list[grpc.Channel] = []
    yield start  # type: ignore[misc]
    for channel in channels:
        channel.close()


def test_buffered_messages_are_written_together_and_acked_one_by_one(
        stub_with_catalog, redis_client) -> None:  # noqa: ANN001
    stub = stub_with_catalog()
    batches = [pb.EventBatch(batch_id=f"b{n}", events=[
        event(f"c{n}-{j}", f"cu{j}", str(1 + (n + j) % 30), ts=n * 100 + j) for j in range(5)])
        for n in range(20)]
    before = writes_and_messages()
    acks, error = stream_while_paused(stub, redis_client, batches)
    after = writes_and_messages()
    assert error is None
    assert [a.batch_id for a in acks] == [b.batch_id for b in batches]
    for batch, ack in zip(batches, acks, strict=True):
        assert [a.event_id for a in ack.acks] == [e.event_id for e in batch.events]
        assert ack.applied == 5
        assert all(a.status == pb.ACK_STATUS_APPLIED for a in ack.acks)
    writes, messages = after[0] - before[0], after[1] - before[1]
    assert messages == 20
    assert writes <= 2, f"{writes} writes for 20 buffered messages: nothing was coalesced"
    # A version counts writes: the coalesced messages share the version of their write, which
    # is the user's version now (every acked event is in it).
    for j in range(5):
        versions = [ack.acks[j].user_version for ack in acks]
        assert versions == sorted(versions) and len(set(versions)) == writes
        state = stub.GetUserState(pb.GetUserStateRequest(user_id=f"cu{j}"), timeout=10)
        assert state.event_count == 20 and state.version == versions[-1]


def test_duplicates_and_replays_across_coalesced_messages_keep_their_outcomes(
        stub_with_catalog, redis_client) -> None:  # noqa: ANN001
    stub = stub_with_catalog()
    batches = [
        pb.EventBatch(batch_id="first", events=[event("x1", "dup", "1", ts=10)]),
        pb.EventBatch(batch_id="same", events=[event("x1", "dup", "1", ts=10),
                                               event("x2", "dup", "2", ts=20)]),
        pb.EventBatch(batch_id="replay", events=[event("x1", "dup", "3", ts=10)]),
    ]
    acks, error = stream_while_paused(stub, redis_client, batches)
    assert error is None
    statuses = [[a.status for a in ack.acks] for ack in acks]
    assert statuses == [[pb.ACK_STATUS_APPLIED],
                        [pb.ACK_STATUS_DUPLICATE, pb.ACK_STATUS_APPLIED],
                        [pb.ACK_STATUS_REJECTED]]
    assert acks[2].acks[0].reason == pb.REJECT_REASON_CONFLICTING_REPLAY
    assert (acks[1].duplicates, acks[1].applied, acks[2].rejected) == (1, 1, 1)
    state = stub.GetUserState(pb.GetUserStateRequest(user_id="dup"), timeout=10)
    assert state.event_count == 2


def test_an_oversized_message_ends_the_stream_after_the_ones_before_it_are_acked(
        stub_with_catalog, redis_client) -> None:  # noqa: ANN001
    stub = stub_with_catalog(max_events_per_batch=3)
    batches = [
        pb.EventBatch(batch_id="a", events=[event("o1", "big", "1"), event("o2", "big", "2")]),
        pb.EventBatch(batch_id="b", events=[event("o3", "big", "3")]),
        pb.EventBatch(batch_id="too-big", events=[event(f"o{4 + i}", "big", "4")
                                                  for i in range(4)]),
        pb.EventBatch(batch_id="after", events=[event("o9", "big", "5")]),
    ]
    acks, error = stream_while_paused(stub, redis_client, batches)
    assert [a.batch_id for a in acks] == ["a", "b"]
    assert error is not None and error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "events" in (error.details() or "") and "3" in (error.details() or "")
    state = stub.GetUserState(pb.GetUserStateRequest(user_id="big"), timeout=10)
    assert state.event_count == 3  # neither the refused message nor the one after it


def test_coalescing_off_writes_each_message_alone(stub_with_catalog, redis_client) -> None:  # noqa: ANN001
    stub = stub_with_catalog(coalesce_events=1)
    batches = [pb.EventBatch(batch_id=f"s{n}", events=[event(f"s{n}", "solo", str(1 + n))])
               for n in range(6)]
    before = writes_and_messages()
    acks, error = stream_while_paused(stub, redis_client, batches)
    after = writes_and_messages()
    assert error is None and [a.applied for a in acks] == [1] * 6
    assert (after[0] - before[0], after[1] - before[1]) == (6, 6)


def test_concurrent_ingest_calls_are_written_together(stub_with_catalog, redis_client) -> None:  # noqa: ANN001
    stub = stub_with_catalog()
    before = REGISTRY.get_sample_value("interest_event_write_calls_count") or 0.0
    before_sum = REGISTRY.get_sample_value("interest_event_write_calls_sum") or 0.0
    redis_client.execute_command("CLIENT", "PAUSE", PAUSE_MS, "ALL")
    acks: dict[int, pb.EventBatchAck] = {}

    def call(n: int) -> None:
        acks[n] = stub.IngestEvents(pb.EventBatch(batch_id=f"g{n}", events=[
            event(f"g{n}", "group", str(1 + n)), event(f"g{n}-b", f"group{n}", str(2 + n))]),
            timeout=30)

    threads = [threading.Thread(target=call, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    writes = (REGISTRY.get_sample_value("interest_event_write_calls_count") or 0.0) - before
    calls = (REGISTRY.get_sample_value("interest_event_write_calls_sum") or 0.0) - before_sum
    assert sorted(acks) == list(range(6))
    for n, ack in acks.items():
        assert ack.batch_id == f"g{n}" and ack.applied == 2
        assert [a.event_id for a in ack.acks] == [f"g{n}", f"g{n}-b"]
    assert calls == 6
    assert writes < 6, "six calls during a paused write were not written together"
    state = stub.GetUserState(pb.GetUserStateRequest(user_id="group"), timeout=10)
    assert state.event_count == 6
