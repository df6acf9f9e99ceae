"""Redis paused (CLIENT PAUSE) or frozen (SIGSTOP): explicit UNAVAILABLE, health follows, recovery.

tests/integration/test_redis_outage.py covers Redis stopped and restarted; a stalled Redis is
worse: connections stay open and nothing answers, so only the socket timeout bounds a call.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from interest.v1 import interest_pb2 as pb
from interest.v1 import interest_pb2_grpc
from interest_server.api.app import SERVICE_NAME, create_server
from interest_server.config import Settings
from interest_server.ops.redis_launcher import EmbeddedRedis

from .conftest import catalog_items, connect, event, settings_for, stored_ids

pytestmark = pytest.mark.redis_sensitive

REDIS_TIMEOUT_S = Settings().redis_timeout_s  # the default the server ships with
MARGIN_S = 0.5
"""A call fails within redis_timeout_s + this (docs/guarantees.md, "No ack without storage")."""
NOT_SERVING_WITHIN_S = 2.0
"""Health turns NOT_SERVING within this (docs/guarantees.md): the probe's 0.5 s interval + 1 s
timeout, plus scheduling on a loaded machine (observed: 1.2 s)."""
OUTAGE_S = REDIS_TIMEOUT_S + 1.5
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


class HealthWatch:
    """Polls Check every 20 ms on its own channel and records when each status was first seen."""

    def __init__(self, target: str) -> None:
        self._channel = grpc.insecure_channel(target)
        self._stub = health_pb2_grpc.HealthStub(self._channel)
        self._stop = threading.Event()
        self.seen: list[tuple[float, int]] = []
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        while not self._stop.wait(0.02):
            try:
                status = self._stub.Check(health_pb2.HealthCheckRequest(service=SERVICE_NAME),
                                          timeout=1).status
            except grpc.RpcError:
                continue
            if not self.seen or self.seen[-1][1] != status:
                self.seen.append((time.monotonic(), status))

    def first(self, status: int, after: float, within_s: float) -> float:
        """Seconds from `after` until `status` was first seen, waiting up to within_s."""
        deadline = after + within_s + 0.5
        while time.monotonic() < deadline:
            for at, s in self.seen:
                if s == status and at >= after:
                    return at - after
            time.sleep(0.02)
        pytest.fail(f"health never reported {status} within {within_s} s (seen {self.seen})")

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=3)
        self._channel.close()


def _stall(mode: str, store: EmbeddedRedis) -> Callable[[], None]:
    """Start the stall; returns what ends it (nothing for a pause, which ends by itself)."""
    if mode == "client-pause":
        # CLIENT PAUSE ALL holds back CLIENT UNPAUSE too, so the pause ends by its timeout.
        admin = connect(store.url)
        admin.execute_command("CLIENT", "PAUSE", int(OUTAGE_S * 1000), "ALL")
        admin.close()
        return lambda: None
    os.kill(store.pid, signal.SIGSTOP)
    return lambda: os.kill(store.pid, signal.SIGCONT)


@pytest.mark.parametrize("mode", ["client-pause", "sigstop"])
def test_stalled_redis_is_unavailable_then_recovers(mode: str, store: EmbeddedRedis,
                                                    encoder) -> None:  # noqa: ANN001
    running = create_server(settings_for(store.url, redis_timeout_s=REDIS_TIMEOUT_S),
                            encoder=encoder)
    watch = HealthWatch(running.target)
    try:
        with grpc.insecure_channel(running.target) as channel:
            stub = interest_pb2_grpc.InterestServiceStub(channel)
            stub.UpsertItems(iter([pb.UpsertItemsRequest(items=catalog_items())]), timeout=60)
            first = stub.IngestEvents(pb.EventBatch(events=[event("k1", "kim", "13", ts=1)]),
                                      timeout=10)
            assert first.acks[0].status == pb.ACK_STATUS_APPLIED

            started = time.monotonic()
            resume = _stall(mode, store)
            try:
                # Concurrent calls, each bounded by the Redis timeout, not queued behind another.
                calls = {
                    "Recommend": stub.Recommend.future(pb.RecommendRequest(user_id="kim"),
                                                       timeout=10),
                    "IngestEvents": stub.IngestEvents.future(
                        pb.EventBatch(events=[event("k2", "kim", "14", ts=2)]), timeout=10),
                    "GetUserState": stub.GetUserState.future(
                        pb.GetUserStateRequest(user_id="kim"), timeout=10),
                }
                done_at: dict[str, float] = {}
                for name, fut in calls.items():
                    fut.add_done_callback(lambda _f, n=name: done_at.setdefault(
                        n, time.monotonic()))
                elapsed = {}
                for name, fut in calls.items():
                    assert fut.exception(timeout=10) is not None, f"{name} succeeded"
                    assert fut.code() == grpc.StatusCode.UNAVAILABLE, (name, fut.exception())
                    elapsed[name] = done_at[name] - started
                assert max(elapsed.values()) < REDIS_TIMEOUT_S + MARGIN_S, elapsed
                to_not_serving = watch.first(NOT_SERVING, started,
                                             within_s=NOT_SERVING_WITHIN_S)
                assert to_not_serving < NOT_SERVING_WITHIN_S
            finally:
                # The stall lasts OUTAGE_S in both modes.
                time.sleep(max(0.0, started + OUTAGE_S - time.monotonic()))
                resume()
                returned = time.monotonic()
            to_serving = watch.first(SERVING, returned, within_s=5.0)
            assert to_serving < 5.0

            # The event answered UNAVAILABLE was not acked and is not stored; resending it
            # applies it now.
            client = connect(store.url)
            try:
                assert set(stored_ids(client, "kim")) == {"k1"}
            finally:
                client.close()
            again = stub.IngestEvents(pb.EventBatch(events=[event("k2", "kim", "14", ts=2)]),
                                      timeout=10)
            assert again.acks[0].status == pb.ACK_STATUS_APPLIED
        print(f"{mode}: UNAVAILABLE after "
              + ", ".join(f"{n} {t:.2f} s" for n, t in elapsed.items())
              + f" (redis_timeout_s {REDIS_TIMEOUT_S}); NOT_SERVING after {to_not_serving:.2f} s;"
              f" SERVING {to_serving:.2f} s after Redis returned")
    finally:
        watch.close()
        running.stop(grace_s=0.5)

