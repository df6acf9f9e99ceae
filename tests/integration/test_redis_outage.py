"""Redis going away is explicit (UNAVAILABLE, NOT_SERVING) and recoverable without a restart."""

from __future__ import annotations

import time
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from interest.v1 import interest_pb2 as pb
from interest.v1 import interest_pb2_grpc
from interest_server.api.app import SERVICE_NAME, create_server
from interest_server.ops.redis_launcher import EmbeddedRedis, free_port

from .conftest import catalog_items, event, settings_for

pytestmark = pytest.mark.redis_sensitive

REDIS_TIMEOUT_S = 1.0
MARGIN_S = 0.5
"""A call fails within redis_timeout_s + this (docs/guarantees.md, "No ack without storage");
a stopped Redis refuses the connection, so it fails in milliseconds."""
NOT_SERVING_WITHIN_S = 2.0
"""Health turns NOT_SERVING within this (docs/guarantees.md; the probe's 0.5 s interval + 1 s
timeout, plus scheduling)."""
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def _wait_for_status(health: health_pb2_grpc.HealthStub, want: int, within_s: float) -> float:
    """Wait for the service's status; the process's ("") must stay SERVING all along."""
    start = time.monotonic()
    while time.monotonic() - start < within_s:
        process = health.Check(health_pb2.HealthCheckRequest(service=""), timeout=2).status
        assert process == SERVING, "a Redis outage must not fail the liveness check"
        status = health.Check(health_pb2.HealthCheckRequest(service=SERVICE_NAME),
                              timeout=2).status
        if status == want:
            return time.monotonic() - start
        time.sleep(0.05)
    pytest.fail(f"health did not become {want} within {within_s} s")


def test_redis_down_gives_unavailable_then_recovers(tmp_path: Path, encoder) -> None:  # noqa: ANN001
    # A fixed port, so the restarted Redis is where the server expects it.
    store = EmbeddedRedis(tmp_path / "redis", port=free_port(), appendfsync="always")
    store.start()
    running = create_server(settings_for(store.url, redis_timeout_s=REDIS_TIMEOUT_S),
                            encoder=encoder)
    try:
        with grpc.insecure_channel(running.target) as channel:
            stub = interest_pb2_grpc.InterestServiceStub(channel)
            health = health_pb2_grpc.HealthStub(channel)
            stub.UpsertItems(iter([pb.UpsertItemsRequest(items=catalog_items())]), timeout=60)
            stub.IngestEvents(pb.EventBatch(events=[event("o1", "olga", "13", ts=1)]),
                              timeout=10)

            store.stop()
            took = []
            for call in (
                lambda: stub.Recommend(pb.RecommendRequest(user_id="olga"), timeout=10),
                lambda: stub.IngestEvents(pb.EventBatch(events=[event("o2", "olga", "14")]),
                                          timeout=10),
            ):
                started = time.monotonic()
                with pytest.raises(grpc.RpcError) as info:
                    call()
                assert info.value.code() == grpc.StatusCode.UNAVAILABLE
                assert "127.0.0.1" not in info.value.details()
                took.append(time.monotonic() - started)
            print(f"\nRedis stopped: UNAVAILABLE after {', '.join(f'{t:.3f}' for t in took)} s")
            assert max(took) < REDIS_TIMEOUT_S + MARGIN_S, took  # guarantees.md: the same bound
            _wait_for_status(health, NOT_SERVING, within_s=NOT_SERVING_WITHIN_S)

            store.start()
            _wait_for_status(health, SERVING, within_s=5.0)
            state = stub.GetUserState(pb.GetUserStateRequest(user_id="olga"), timeout=10)
            assert [e.event_id for e in state.recent_events] == ["o1"], \
                "the acked event survived; the unacked one was never stored"
            ack = stub.IngestEvents(pb.EventBatch(events=[event("o2", "olga", "14")]),
                                    timeout=10)
            assert ack.acks[0].status == pb.ACK_STATUS_APPLIED
    finally:
        running.stop(grace_s=0.5)
        store.stop()
