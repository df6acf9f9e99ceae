"""The Prometheus endpoint: after known traffic every counter moved by exactly what it should."""

from __future__ import annotations

import threading
import urllib.request
from collections.abc import Iterator

import grpc
import pytest
import redis
from interest.v1 import interest_pb2 as pb
from interest.v1 import interest_pb2_grpc
from interest_server.api.app import RunningServer, create_server
from interest_server.model.encoder import TextEncoder
from interest_server.ops.redis_launcher import free_port
from prometheus_client.parser import text_string_to_metric_families

from .conftest import catalog_items, event, settings_for

SERVICE = "interest.v1.InterestService"
Sample = tuple[str, frozenset[tuple[str, str]]]


def scrape(port: int) -> dict[Sample, float]:
    """Every sample of http://127.0.0.1:<port>/metrics."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
        assert resp.status == 200
        text = resp.read().decode()
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def sample(name: str, **labels: str) -> Sample:
    return name, frozenset(labels.items())


@pytest.fixture
def metered(redis_client: redis.Redis, redis_server: str,
            encoder: TextEncoder) -> Iterator[tuple[RunningServer, int]]:
    port = free_port()
    running = create_server(settings_for(redis_server, metrics_port=port, user_cache_size=100),
                            encoder=encoder)
    try:
        yield running, port
    finally:
        running.stop(grace_s=0.5)


def test_counters_move_by_exactly_the_traffic(metered: tuple[RunningServer, int],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    running, port = metered
    with grpc.insecure_channel(running.target) as channel:
        stub = interest_pb2_grpc.InterestServiceStub(channel)
        stub.UpsertItems(iter([pb.UpsertItemsRequest(items=catalog_items())]), timeout=60)
        before = scrape(port)

        ack = stub.IngestEvents(pb.EventBatch(events=[event("e1", "m", "1"),
                                                      event("e2", "m", "2")]), timeout=10)
        assert ack.applied == 2
        ack = stub.IngestEvents(pb.EventBatch(events=[event("e1", "m", "1"),
                                                      event("e3", "m", "no-such-item")]),
                                timeout=10)
        assert (ack.duplicates, ack.rejected) == (1, 1)
        assert stub.Recommend(pb.RecommendRequest(user_id="m", k=5), timeout=10).items

        def unreachable(*_args: object, **_kwargs: object) -> None:
            raise redis.ConnectionError("Error 111 connecting to 10.0.0.1:6379")

        monkeypatch.setattr(running.engine, "recommend", unreachable)
        with pytest.raises(grpc.RpcError) as info:
            stub.Recommend(pb.RecommendRequest(user_id="m"), timeout=10)
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE
        monkeypatch.undo()

        stub.UpsertItems(iter([pb.UpsertItemsRequest(items=catalog_items()[:2])]), timeout=60,
                         metadata=(("x-tenant-id", "acme"),))

        watch = stub.WatchRecommendations(pb.WatchRecommendationsRequest(user_id="quiet"),
                                          timeout=30)
        next(watch)
        during = scrape(port)
        watch.cancel()
        done = threading.Event()
        threading.Thread(target=lambda: (list(_drain(watch)), done.set()), daemon=True).start()
        assert done.wait(5)
        for _ in range(50):  # the server notices the cancel on its own thread
            after = scrape(port)
            if after.get(sample("interest_streams_in_flight", service=SERVICE,
                                method="WatchRecommendations")) == 0:
                break
            threading.Event().wait(0.1)

    def delta(s: Sample) -> float:
        return after.get(s, 0.0) - before.get(s, 0.0)

    events = "interest_events_total"
    assert delta(sample(events, outcome="applied", reason="")) == 2
    assert delta(sample(events, outcome="duplicate", reason="")) == 1
    assert delta(sample(events, outcome="rejected", reason="unknown_item")) == 1
    assert delta(sample(events, outcome="rejected", reason="invalid_field")) == 0

    rpcs = "interest_rpc_duration_seconds_count"
    assert delta(sample(rpcs, service=SERVICE, method="IngestEvents", code="OK")) == 2
    assert delta(sample(rpcs, service=SERVICE, method="Recommend", code="OK")) == 1
    assert delta(sample(rpcs, service=SERVICE, method="Recommend", code="UNAVAILABLE")) == 1
    assert delta(sample(rpcs, service=SERVICE, method="WatchRecommendations",
                        code="CANCELLED")) == 1
    assert delta(sample("interest_redis_errors_total", kind="connection")) == 1
    assert delta(sample("interest_watch_pushes_total")) == 1

    streams = sample("interest_streams_in_flight", service=SERVICE,
                     method="WatchRecommendations")
    assert during[streams] == before.get(streams, 0.0) + 1
    assert after[streams] == before.get(streams, 0.0)
    assert after[sample("interest_index_items")] == 30
    # User "m": its first batch reads (miss); the second is answered without a read (hit):
    # the cached record holds e1, so its duplicate is told apart without asking Redis.
    lookups = "interest_user_state_cache_lookups_total"
    assert delta(sample(lookups, result="hit")) == 1
    assert delta(sample(lookups, result="miss")) == 1
    assert after[sample("interest_user_state_cache_entries")] == 1
    assert after[sample("interest_tenants")] == 2
    assert after[sample("interest_tenant_index_items", tenant="default")] == 30
    assert after[sample("interest_tenant_index_items", tenant="acme")] == 2
    model = running.engine.encoder.model_id
    assert after[sample("interest_model_info", encoder=model,
                        interest_model=running.engine.model.version)] == 1


def _drain(call: Iterator[pb.RecommendResponse]) -> Iterator[pb.RecommendResponse]:
    try:
        yield from call
    except grpc.RpcError as err:
        assert err.code() == grpc.StatusCode.CANCELLED


def test_the_endpoint_is_off_by_default(server: RunningServer) -> None:
    assert server.metrics_http is None
