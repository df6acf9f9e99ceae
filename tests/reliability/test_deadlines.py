"""Deadlines and cancellation: the caller gets DEADLINE_EXCEEDED, and abandoned work writes nothing.

Redis is frozen (SIGSTOP) so the server's work is parked in a Redis read when the deadline passes
or the stream is cancelled; Redis then resumes while the server's Redis timeout (10 s) has not
expired, so without a check the server would carry on and write for a caller that is gone.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator

import grpc
import pytest
from interest.v1 import interest_pb2 as pb
from interest.v1 import interest_pb2_grpc
from interest_server.api.app import RunningServer, create_server
from interest_server.ops.redis_launcher import EmbeddedRedis

from .conftest import catalog_items, connect, event, frozen, settings_for, stored_ids

REDIS_TIMEOUT_S = 10.0
DEADLINE_S = 0.3
SETTLE_S = 1.0  # time for the server thread to finish what it was doing once Redis resumes
CANCEL_FREES_SLOT_S = 3.0
"""A cancelled idle stream's slot is free well within this (observed: tens of ms); only a
handler that never learns of the cancel (it would hold the slot until the 60 s deadline)
exceeds it, so it is generous for a loaded machine without being vacuous."""


@pytest.fixture
def running(store: EmbeddedRedis, encoder) -> Iterator[RunningServer]:  # noqa: ANN001
    srv = create_server(settings_for(store.url, redis_timeout_s=REDIS_TIMEOUT_S),
                        encoder=encoder)
    try:
        with grpc.insecure_channel(srv.target) as channel:
            interest_pb2_grpc.InterestServiceStub(channel).UpsertItems(
                iter([pb.UpsertItemsRequest(items=catalog_items())]), timeout=60)
        yield srv
    finally:
        srv.stop(grace_s=0.5)


def test_past_the_deadline_recommend_and_ingest_stop(running: RunningServer,
                                                     store: EmbeddedRedis) -> None:
    with grpc.insecure_channel(running.target) as channel:
        stub = interest_pb2_grpc.InterestServiceStub(channel)
        stub.IngestEvents(pb.EventBatch(events=[event("d0", "dee", "13", ts=1)]), timeout=10)
        with frozen(store):
            took = {}
            for name, call in (
                ("Recommend", lambda: stub.Recommend(pb.RecommendRequest(user_id="dee"),
                                                     timeout=DEADLINE_S)),
                ("IngestEvents", lambda: stub.IngestEvents(
                    pb.EventBatch(events=[event("d1", "dee", "14", ts=2)]),
                    timeout=DEADLINE_S)),
            ):
                t0 = time.monotonic()
                with pytest.raises(grpc.RpcError) as info:
                    call()
                took[name] = time.monotonic() - t0
                assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED, info.value
                assert took[name] < DEADLINE_S + 0.2, took
            time.sleep(0.2)  # Redis resumes well after the deadline, long before its timeout
        time.sleep(SETTLE_S)
        client = connect(store.url)
        try:
            assert set(stored_ids(client, "dee")) == {"d0"}, \
                "IngestEvents wrote after its deadline had passed"
        finally:
            client.close()
        again = stub.IngestEvents(pb.EventBatch(events=[event("d1", "dee", "14", ts=2)]),
                                  timeout=10)
        assert again.acks[0].status == pb.ACK_STATUS_APPLIED
    print("DEADLINE_EXCEEDED after " + ", ".join(f"{n} {t:.3f} s" for n, t in took.items())
          + f" (deadline {DEADLINE_S} s); nothing written after the deadline")


def test_cancelled_stream_writes_nothing_more(running: RunningServer,
                                              store: EmbeddedRedis) -> None:
    sent_before, queued_after = 3, 4
    events = [event(f"c{i}", "cat", str(1 + i % 30), ts=1 + i) for i in range(
        (sent_before + queued_after) * 20)]
    messages = [pb.EventBatch(batch_id=f"c{n}", events=events[n * 20:(n + 1) * 20])
                for n in range(sent_before + queued_after)]
    outbox: queue.SimpleQueue[pb.EventBatch | None] = queue.SimpleQueue()

    def requests() -> Iterator[pb.EventBatch]:
        while (batch := outbox.get()) is not None:
            yield batch

    with grpc.insecure_channel(running.target) as channel:
        stub = interest_pb2_grpc.InterestServiceStub(channel)
        call = stub.StreamEvents(requests(), timeout=60)
        acks = []
        for batch in messages[:sent_before]:
            outbox.put(batch)
            acks.append(next(call))
        assert all(a.applied == 20 for a in acks)
        with frozen(store):
            for batch in messages[sent_before:]:
                outbox.put(batch)  # the server takes the first into a (frozen) Redis read
            time.sleep(0.3)
            call.cancel()
            time.sleep(0.3)  # the server learns of the cancellation while Redis is frozen
        outbox.put(None)
        time.sleep(SETTLE_S)
        client = connect(store.url)
        try:
            sent = [ev.event_id for b in messages for ev in b.events]
            stored = set(stored_ids(client, "cat", sent))
        finally:
            client.close()
        before = {ev.event_id for b in messages[:sent_before] for ev in b.events}
        after = {ev.event_id for b in messages[sent_before:] for ev in b.events}
        assert before <= stored
        assert not stored & after, \
            f"{len(stored & after)} event(s) of batches queued behind a cancel were written"
        # The server is fine afterwards.
        ok = stub.IngestEvents(pb.EventBatch(events=messages[-1].events), timeout=10)
        assert ok.applied == 20
    print(f"cancelled after {sent_before} acked batches with {queued_after} queued: "
          f"{len(after)} later events, 0 written")


def test_stream_cancelled_between_batches_stops_reading(store: EmbeddedRedis,
                                                        encoder) -> None:  # noqa: ANN001
    """Cancelling an idle stream frees its worker at once: the server ends the handler and
    gives its stream slot back. (`next(call)` raising CANCELLED proves nothing about the server:
    the client library raises it locally.) With max_event_streams=1, a second stream is refused
    while the first is open and admitted once the server has seen the cancel."""
    srv = create_server(settings_for(store.url, max_event_streams=1), encoder=encoder)
    stop = threading.Event()

    def requests() -> Iterator[pb.EventBatch]:
        yield pb.EventBatch(batch_id="i0", events=[event("i0", "ida", "1", ts=1)])
        stop.wait(10)

    def second_stream() -> grpc.StatusCode | None:
        """None when a second stream is admitted and acks, else the code it was refused with."""
        try:
            ack = next(stub.StreamEvents(iter([pb.EventBatch(
                batch_id="j0", events=[event("j0", "jay", "2", ts=1)])]), timeout=10))
        except grpc.RpcError as err:
            return err.code()
        assert ack.applied == 1
        return None

    try:
        with grpc.insecure_channel(srv.target) as channel:
            stub = interest_pb2_grpc.InterestServiceStub(channel)
            stub.UpsertItems(iter([pb.UpsertItemsRequest(items=catalog_items())]), timeout=60)
            call = stub.StreamEvents(requests(), timeout=60)
            assert next(call).applied == 1
            assert second_stream() == grpc.StatusCode.RESOURCE_EXHAUSTED  # the slot is held
            cancelled = time.monotonic()
            call.cancel()
            while (code := second_stream()) is not None:
                assert code == grpc.StatusCode.RESOURCE_EXHAUSTED, code
                assert time.monotonic() - cancelled < CANCEL_FREES_SLOT_S, \
                    f"the cancelled stream still held its slot after {CANCEL_FREES_SLOT_S} s"
                time.sleep(0.02)
            freed = time.monotonic() - cancelled
            stop.set()
            with pytest.raises(grpc.RpcError) as info:
                next(call)
            assert info.value.code() == grpc.StatusCode.CANCELLED
    finally:
        stop.set()
        srv.stop(grace_s=0.5)
    print(f"the cancelled stream's slot was free again after {freed * 1000:.0f} ms")
