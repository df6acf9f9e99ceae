"""WatchRecommendations: a live list per user, pushed on every change from any server process,
coalesced under bursts, bounded per process, ended by cancel and by shutdown."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterator

import grpc
import numpy as np
import pytest
from interest.v1 import interest_pb2 as pb
from interest.v1 import interest_pb2_grpc
from interest_server.api.app import RunningServer, create_server
from interest_server.model.encoder import TextEncoder

from .conftest import catalog_items, event, settings_for, start_server_process

Stub = interest_pb2_grpc.InterestServiceStub
P99_BOUND_MS = 50.0
"""Ack-to-push p99 across processes (docs/api.md, Live recommendation streams;
bench/README.md's target)."""


class Watch:
    """A WatchRecommendations call read by a background thread; every push is timestamped."""

    def __init__(self, stub: Stub, user_id: str, *, k: int = 10, min_interval_ms: int = 0,
                 read_gate: threading.Event | None = None, **kwargs: object) -> None:
        self.call = stub.WatchRecommendations(pb.WatchRecommendationsRequest(
            user_id=user_id, k=k, min_interval_ms=min_interval_ms, **kwargs), timeout=120)
        self.pushes: list[tuple[float, pb.RecommendResponse]] = []
        self.error: grpc.RpcError | None = None
        self.ended = threading.Event()
        self._cond = threading.Condition()
        self._gate = read_gate
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            while True:
                if self._gate is not None:
                    self._gate.wait()
                resp = next(self.call)
                with self._cond:
                    self.pushes.append((time.monotonic(), resp))
                    self._cond.notify_all()
        except StopIteration:
            pass
        except grpc.RpcError as err:
            self.error = err
        finally:
            self.ended.set()
            with self._cond:
                self._cond.notify_all()

    def wait_for(self, pred: Callable[[pb.RecommendResponse], bool],
                 timeout: float = 10.0) -> tuple[float, pb.RecommendResponse]:
        """The first push satisfying pred (waiting for it)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for t, resp in self.pushes:
                    if pred(resp):
                        return t, resp
                left = deadline - time.monotonic()
                if left <= 0 or self.ended.is_set():
                    raise AssertionError(f"no such push; got versions "
                                         f"{[r.user_version for _, r in self.pushes]}, "
                                         f"error {self.error}")
                self._cond.wait(left)

    def cancel(self) -> None:
        self.call.cancel()
        self.ended.wait(5)


def _ids(resp: pb.RecommendResponse) -> list[str]:
    return [i.item_id for i in resp.items]


def _until(pred: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def test_pushes_the_list_at_once_and_on_every_change(server: RunningServer, stub: Stub,
                                                     catalog: list[pb.Item]) -> None:
    watch = Watch(stub, "w1", k=5)
    _, first = watch.wait_for(lambda r: True)
    assert first.user_version == 0 and first.strategy == "popular" and len(first.items) == 5

    stub.IngestEvents(pb.EventBatch(events=[event("e1", "w1", "13")]), timeout=10)
    _, after_like = watch.wait_for(lambda r: r.user_version == 1)
    assert after_like.strategy == "behaviour" and "13" not in _ids(after_like)
    assert _ids(after_like) == _ids(stub.Recommend(pb.RecommendRequest(user_id="w1", k=5)))

    # A duplicate changes nothing: it is acked DUPLICATE at the version it found, the stored
    # state is as before, and no list is pushed (an applied one would bump the version, which
    # every push carries, so it would be pushed).
    state = pb.GetUserStateRequest(user_id="w1", include_vector=True)
    before = stub.GetUserState(state, timeout=10)
    dup = stub.IngestEvents(pb.EventBatch(events=[event("e1", "w1", "13")]), timeout=10)
    assert (dup.acks[0].status, dup.acks[0].user_version) == (pb.ACK_STATUS_DUPLICATE, 1)
    assert stub.GetUserState(state, timeout=10) == before
    time.sleep(3 * server.engine.settings.watch_min_interval_ms / 1000)  # a push is out by now
    assert [r.user_version for _, r in watch.pushes] == [0, 1]
    stub.EncodeInterest(pb.EncodeInterestRequest(
        user_id="w1", text="I love mystery films, I hate romance"), timeout=30)
    _, after_concepts = watch.wait_for(lambda r: r.user_version == 2)
    assert "concepts" in after_concepts.strategy
    assert [v for _, r in watch.pushes for v in [r.user_version]] == [0, 1, 2]

    stub.DeleteUser(pb.DeleteUserRequest(user_id="w1"), timeout=10)
    _, after_delete = watch.wait_for(lambda r: r.user_version == 0 and r is not first)
    assert after_delete.strategy == "popular"

    assert server.watch is not None and server.watch.active == 1
    watch.cancel()
    assert watch.error is not None and watch.error.code() == grpc.StatusCode.CANCELLED
    assert _until(lambda: server.watch.active == 0), "the watcher outlived its cancelled call"


def test_options_apply_to_every_list(stub: Stub, catalog: list[pb.Item]) -> None:
    options = pb.RecommendOptions(exclude=[pb.AttributeFilter(name="genre", values=["Sci-Fi"])])
    watch = Watch(stub, "w2", k=8, options=options)
    watch.wait_for(lambda r: True)
    stub.IngestEvents(pb.EventBatch(events=[event("e1", "w2", "13")]), timeout=10)
    _, resp = watch.wait_for(lambda r: r.user_version == 1)
    expected = stub.Recommend(pb.RecommendRequest(user_id="w2", k=8, options=options))
    assert _ids(resp) == _ids(expected)
    assert not {"13", "14", "15", "16", "17", "18"} & set(_ids(resp))
    watch.cancel()


@pytest.mark.parametrize(("request_", "prefix"), [
    (pb.WatchRecommendationsRequest(), "user_id is required"),
    (pb.WatchRecommendationsRequest(user_id="u", k=-1), "k must be >= 0"),
    (pb.WatchRecommendationsRequest(user_id="u", k=1001), "k is 1001; the limit is 1000"),
    (pb.WatchRecommendationsRequest(user_id="u", options=pb.RecommendOptions(theta=math.nan)),
     "options.theta must be"),
    (pb.WatchRecommendationsRequest(user_id="u", min_interval_ms=3_600_001),
     "min_interval_ms is 3600001; the limit is 3600000"),
])
def test_bad_requests_are_refused_like_recommend(stub: Stub, request_: object,
                                                 prefix: str) -> None:
    with pytest.raises(grpc.RpcError) as info:
        list(stub.WatchRecommendations(request_, timeout=10))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert info.value.details().startswith(prefix), info.value.details()


def _burst(stub: Stub, user: str, n: int) -> tuple[float, float]:
    """n events as n IngestEvents calls back to back; returns (start, end) monotonic."""
    start = time.monotonic()
    for i in range(n):
        stub.IngestEvents(pb.EventBatch(events=[
            event(f"b{i}", user, str(i % 30 + 1), kind=pb.EVENT_TYPE_VIEW, ts=1000 + i)]),
            timeout=10)
    return start, time.monotonic()


@pytest.mark.parametrize("reader", ["fast", "slow"])
def test_a_burst_is_coalesced(stub: Stub, catalog: list[pb.Item], reader: str) -> None:
    """200 events: at most one push per min interval after the first, the last one showing
    the final state. A reader that does not read during the burst gets no more lists."""
    interval_s = 0.25
    gate = threading.Event()
    if reader == "fast":
        gate.set()
    watch = Watch(stub, "burst", min_interval_ms=int(interval_s * 1000), read_gate=gate)
    if reader == "fast":
        watch.wait_for(lambda r: True)
    else:
        time.sleep(0.5)  # the first list is sent, not read
    start, end = _burst(stub, "burst", 200)
    gate.set()
    watch.wait_for(lambda r: r.user_version == 200, timeout=10)
    time.sleep(2 * interval_s)  # nothing else may come
    versions = [r.user_version for _, r in watch.pushes]
    # The first list; lists computed during the burst are >= one interval apart (at most
    # floor(D / interval) + 1 of them); then at most one more, with the final state.
    bound = 1 + math.floor((end - start) / interval_s) + 1 + 1
    print(f"\nburst of 200 events in {end - start:.2f} s, {reader} reader: {len(versions)} "
          f"pushes (bound {bound}), versions {versions}")
    assert len(versions) <= bound
    assert versions[-1] == 200 and versions == sorted(versions)
    watch.cancel()


def test_watch_streams_are_bounded_and_count_as_rpcs(redis_client, redis_server: str,  # noqa: ANN001
                                                     encoder: TextEncoder) -> None:
    running = create_server(settings_for(redis_server, max_watch_streams=2,
                                         max_concurrent_rpcs=3), encoder=encoder)
    try:
        with grpc.insecure_channel(running.target) as channel:
            stub = Stub(channel)
            watches = [Watch(stub, f"u{i}") for i in range(2)]
            for w in watches:
                w.wait_for(lambda r: True)
            # The per-process limit of watch streams.
            with pytest.raises(grpc.RpcError) as info:
                list(stub.WatchRecommendations(pb.WatchRecommendationsRequest(user_id="u9"),
                                               timeout=10))
            assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert "max_watch_streams=2" in info.value.details()
            # Two open streams + this call + one more: max_concurrent_rpcs=3 refuses the 4th.
            sent = threading.Event()

            def block_one_slot() -> Iterator[pb.EventBatch]:
                yield pb.EventBatch(batch_id="x", events=[event("h1", "u", "1")])
                sent.wait(10)

            held = stub.StreamEvents(block_one_slot(), timeout=30)
            next(held)  # the call is open on the server
            with pytest.raises(grpc.RpcError) as info:
                stub.Recommend(pb.RecommendRequest(user_id="u"), timeout=10)
            assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            watches[0].cancel()
            assert _until(lambda: running.watch.active == 1)
            time.sleep(0.1)
            assert stub.Recommend(pb.RecommendRequest(user_id="u"), timeout=10).user_id == "u"
            sent.set()
            list(held)
            watches[1].cancel()
    finally:
        running.stop(grace_s=0.5)


def test_graceful_shutdown_ends_the_stream(redis_client, redis_server: str,  # noqa: ANN001
                                           encoder: TextEncoder) -> None:
    running = create_server(settings_for(redis_server), encoder=encoder)
    with grpc.insecure_channel(running.target) as channel:
        watch = Watch(Stub(channel), "bye")
        watch.wait_for(lambda r: True)
        started = time.monotonic()
        stopper = threading.Thread(target=running.stop, kwargs={"grace_s": 5.0})
        stopper.start()
        assert watch.ended.wait(3), "the watch stream outlived the shutdown"
        took = time.monotonic() - started
        stopper.join()
    assert watch.error is not None and watch.error.code() == grpc.StatusCode.UNAVAILABLE
    assert "shutting down" in watch.error.details()
    assert took < 2.0, f"the stream ended only after {took:.2f} s (not at once)"


def test_changes_on_another_process_reach_the_watcher(redis_client,  # noqa: ANN001
                                                      redis_server: str) -> None:
    """Events into B, the watcher on A: every change is pushed; ack-to-push p99 <= 50 ms (the
    median over up to three rounds of 100 events)."""
    procs = []
    threads = [threading.Thread(target=lambda: procs.append(start_server_process(redis_server)))
               for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert len(procs) == 2
        a = Stub(grpc.insecure_channel(procs[0].target))
        b = Stub(grpc.insecure_channel(procs[1].target))
        a.UpsertItems(iter([pb.UpsertItemsRequest(items=catalog_items())]), timeout=60)
        assert _until(lambda: len(b.Recommend(pb.RecommendRequest(user_id="p", k=30),
                                              timeout=10).items) == 30)

        watch = Watch(a, "x", k=10)
        watch.wait_for(lambda r: True)
        ack = b.IngestEvents(pb.EventBatch(events=[event("first", "x", "13")]), timeout=10)
        _, pushed = watch.wait_for(lambda r: r.user_version == ack.acks[0].user_version)
        assert _ids(pushed) == _ids(a.Recommend(pb.RecommendRequest(user_id="x", k=10)))
        b.EncodeInterest(pb.EncodeInterestRequest(user_id="x", text="I love mystery films"),
                         timeout=30)
        _, pushed = watch.wait_for(lambda r: r.user_version == 2)
        assert "concepts" in pushed.strategy

        # Latency: one event at a time, spaced wider than the 100 ms minimum interval, so no
        # push waits for the rate limit; measured from B's ack to A's push reaching us. A p99
        # of 100 samples is the second-slowest, which one preemption of a loaded 2-core box
        # can set: the bound holds for the median of up to three rounds (two passing rounds
        # end it; two failing ones fail it).
        rng = np.random.default_rng(7)
        sent = 0
        rounds: list[tuple[float, float, float]] = []  # (p50, p99, max) per round
        while sum(r[1] <= P99_BOUND_MS for r in rounds) < 2 and \
                sum(r[1] > P99_BOUND_MS for r in rounds) < 2:
            latencies = []
            for _ in range(100):
                time.sleep(0.12 + float(rng.uniform(0, 0.03)))
                ack = b.IngestEvents(pb.EventBatch(events=[
                    event(f"l{sent}", "x", str(sent % 30 + 1), kind=pb.EVENT_TYPE_CLICK)]),
                    timeout=10)
                acked = time.monotonic()
                sent += 1
                version = ack.acks[0].user_version
                pushed_at, _ = watch.wait_for(lambda r, v=version: r.user_version >= v)
                latencies.append(max(0.0, pushed_at - acked) * 1000)
            p50, p99 = np.percentile(latencies, [50, 99])
            rounds.append((float(p50), float(p99), max(latencies)))
        print("\nack-to-push latency across processes, rounds of 100 events: " + "; ".join(
            f"p50 {p50:.1f} ms, p99 {p99:.1f} ms, max {top:.1f} ms" for p50, p99, top in rounds))
        assert float(np.median([r[1] for r in rounds])) <= P99_BOUND_MS, rounds

        # A burst into B: coalesced on A.
        before = len(watch.pushes)
        start, end = _burst(b, "x", 200)
        final = 2 + sent + 200
        watch.wait_for(lambda r: r.user_version == final)
        time.sleep(0.3)
        pushes = len(watch.pushes) - before
        bound = math.floor((end - start) / 0.1) + 2  # as in test_a_burst_is_coalesced
        print(f"burst of 200 events into B in {end - start:.2f} s: {pushes} pushes on A "
              f"(bound {bound})")
        assert pushes <= bound
        watch.cancel()
    finally:
        for p in procs:
            p.stop()


def test_the_subscriber_survives_a_dropped_connection(server: RunningServer, stub: Stub,
                                                      catalog: list[pb.Item],
                                                      redis_client) -> None:  # noqa: ANN001
    watch = Watch(stub, "drop")
    watch.wait_for(lambda r: True)
    assert redis_client.client_kill_filter(_type="pubsub") >= 1
    time.sleep(0.3)  # the subscriber notices, reconnects and subscribes again
    stub.IngestEvents(pb.EventBatch(events=[event("d1", "drop", "13")]), timeout=10)
    watch.wait_for(lambda r: r.user_version == 1, timeout=5)
    watch.cancel()
