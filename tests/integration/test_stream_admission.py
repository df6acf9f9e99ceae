"""Long-lived streams (StreamEvents, WatchRecommendations) each hold one of the server's RPC
threads for as long as they stay open. Without a cap, `workers` open event streams (backends
that keep a stream per process, which is how StreamEvents is meant to be used) took every thread
and a Recommend queued behind them until its deadline. Streams beyond the cap are refused with
RESOURCE_EXHAUSTED instead, so unary calls always find a thread."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

import grpc
import pytest
from interest.v1 import interest_pb2 as pb
from interest.v1 import interest_pb2_grpc
from interest_server.api.app import create_server
from interest_server.config import Settings
from interest_server.model.encoder import TextEncoder

from .conftest import event, settings_for


class OpenStream:
    """A StreamEvents call that sends one batch and stays open until close(). (The test
    catalog is empty: the event is acked as rejected, which is all the stream needs.)"""

    def __init__(self, stub: interest_pb2_grpc.InterestServiceStub, name: str) -> None:
        self._done = threading.Event()

        def requests() -> Iterator[pb.EventBatch]:
            yield pb.EventBatch(batch_id=name, events=[event(f"{name}-1", name, "1")])
            self._done.wait(60)

        self.call = stub.StreamEvents(requests(), timeout=60)

    def first_ack(self) -> pb.EventBatchAck:
        return next(self.call)

    def close(self) -> None:
        self._done.set()
        with contextlib.suppress(grpc.RpcError):  # a refused stream ended already
            list(self.call)


def test_open_event_streams_leave_threads_for_unary_calls(
        redis_client, redis_server: str, encoder: TextEncoder) -> None:  # noqa: ANN001
    workers = 4
    running = create_server(settings_for(redis_server, workers=workers), encoder=encoder)
    streams: list[OpenStream] = []
    try:
        with grpc.insecure_channel(running.target) as channel:
            stub = interest_pb2_grpc.InterestServiceStub(channel)
            admitted, refused = 0, []
            for n in range(workers):
                s = OpenStream(stub, f"s{n}")
                streams.append(s)
                try:
                    assert s.first_ack().batch_id == f"s{n}"
                    admitted += 1
                except grpc.RpcError as err:
                    refused.append(err)
            # Every thread but the unary reserve may hold a stream; the rest are refused at once
            # with a message that says what to do.
            assert admitted == workers - Settings(workers=workers).unary_reserve
            assert refused and all(e.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
                                   for e in refused)
            assert "max_event_streams" in refused[0].details()
            assert "IngestEvents" in refused[0].details()
            # A unary call still gets a thread at once (before the cap it waited for one).
            resp = stub.Recommend(pb.RecommendRequest(user_id="s0"), timeout=5)
            assert resp.user_id == "s0"
            batch = pb.EventBatch(batch_id="u", events=[event("u-1", "s0", "2")])
            assert stub.IngestEvents(batch, timeout=5).batch_id == "u"
            # A closed stream frees its slot for the next one.
            streams[0].close()
            again = OpenStream(stub, "again")
            streams.append(again)
            for _ in range(50):
                try:
                    assert again.first_ack().batch_id == "again"
                    break
                except grpc.RpcError as err:  # the slot is released as the call ends
                    assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
                    again = OpenStream(stub, "again")
                    streams.append(again)
            else:
                pytest.fail("a closed stream's slot was never released")
    finally:
        for s in streams:
            s.close()
        running.stop(grace_s=0.5)


def test_watch_and_event_streams_share_the_stream_threads(
        redis_client, redis_server: str, encoder: TextEncoder) -> None:  # noqa: ANN001
    workers = 6
    settings = settings_for(redis_server, workers=workers, max_watch_streams=8,
                            max_event_streams=8)
    slots = workers - settings.unary_reserve
    running = create_server(settings, encoder=encoder)
    streams: list[OpenStream] = []
    watches: list[grpc.Future] = []
    try:
        with grpc.insecure_channel(running.target) as channel:
            stub = interest_pb2_grpc.InterestServiceStub(channel)
            for n in range(slots - 1):
                s = OpenStream(stub, f"s{n}")
                streams.append(s)
                s.first_ack()
            watch = stub.WatchRecommendations(pb.WatchRecommendationsRequest(user_id="w"),
                                              timeout=60)
            watches.append(watch)
            assert next(watch).user_id == "w"
            # Every stream slot is taken now: both kinds are refused.
            with pytest.raises(grpc.RpcError) as info:
                next(stub.WatchRecommendations(pb.WatchRecommendationsRequest(user_id="x"),
                                               timeout=10))
            assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            late = OpenStream(stub, "late")
            streams.append(late)
            with pytest.raises(grpc.RpcError) as info:
                late.first_ack()
            assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert stub.Recommend(pb.RecommendRequest(user_id="w"), timeout=5).user_id == "w"
    finally:
        for w in watches:
            w.cancel()
        for s in streams:
            s.close()
        running.stop(grace_s=0.5)


def test_every_valid_worker_count_leaves_a_stream_slot_and_a_unary_thread() -> None:
    with pytest.raises(ValueError, match="workers"):
        Settings(workers=1)
    for workers in range(2, 129):
        s = Settings(workers=workers)
        assert s.unary_reserve >= 1 and s.stream_slots >= 1
        assert s.unary_reserve + s.stream_slots == workers
