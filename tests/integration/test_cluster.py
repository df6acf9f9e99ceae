"""The service against a real 3-primary Redis Cluster (redis-server processes on loopback).

The core flows of the integration suite run here unchanged: their test functions are imported
from the standalone modules, and this module's `redis_server`, `redis_client` and
`server_overrides` fixtures put them (and the shared server fixtures) on the cluster.
Cluster-specific checks follow: users spread over every primary, each user's keys on one slot,
concurrent writers, catalog propagation, and a primary going down and coming back.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from interest.v1 import interest_pb2 as pb
from interest.v1 import interest_pb2_grpc
from interest_server.api.app import SERVICE_NAME, RunningServer, create_server
from interest_server.model.encoder import TextEncoder
from interest_server.state.keys import user_keys
from redis.cluster import RedisCluster

from tests.redis_cluster import EmbeddedRedisCluster

from .conftest import catalog_items, event, settings_for
from .test_replicas import test_two_processes_share_state  # noqa: F401
from .test_service import (  # noqa: F401 - collected here, against the cluster
    test_concepts_alone_lead_a_user_without_behaviour,
    test_conflicting_replay_is_rejected_and_changes_nothing,
    test_delete_user_leaves_no_key,
    test_encode_interest_merge_and_replace,
    test_get_user_state_reports_window_and_vector,
    test_health_and_reflection,
    test_ingest_changes_recommendations_at_once,
    test_one_bad_event_never_ends_the_stream,
    test_read_your_writes_on_every_ack,
    test_request_filters_and_exclusions,
    test_same_thousand_events_twice_equals_once,
    test_stated_interests_turn_the_list_and_filter_dislikes,
    test_stream_events_acks_each_batch_in_order,
    test_upsert_and_delete_items,
)
from .test_tenants import test_tenants_are_isolated  # noqa: F401
from .test_watch import test_pushes_the_list_at_once_and_on_every_change  # noqa: F401

pytestmark = pytest.mark.redis_sensitive

PRIMARIES = 3


@pytest.fixture(scope="module")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedRedisCluster]:
    """Three redis-server primaries, slots split evenly."""
    cluster = EmbeddedRedisCluster(Path(tmp_path_factory.mktemp("cluster")), PRIMARIES)
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def redis_server(redis_cluster: EmbeddedRedisCluster) -> str:
    """The cluster's seed URL, for tests that start their own servers."""
    return redis_cluster.url


@pytest.fixture
def redis_client(redis_cluster: EmbeddedRedisCluster) -> Iterator[RedisCluster]:
    """A cluster client on an empty cluster (FLUSHALL on every primary first)."""
    client = RedisCluster.from_url(redis_cluster.url)
    client.flushall(target_nodes=RedisCluster.PRIMARIES)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def server_overrides() -> dict[str, object]:
    """Every server of this module (the shared `server`, `make_server` and `two_servers`
    fixtures) runs against the cluster."""
    return {"redis_cluster": True}


@pytest.fixture(autouse=True)
def _catalog_for_service_tests(request: pytest.FixtureRequest) -> None:
    """test_service.py gives each of its tests the catalog (its pytestmark, which does not
    travel with an imported function): do the same for them here."""
    if request.function.__module__.endswith(".test_service"):
        request.getfixturevalue("catalog")


def test_cluster_is_three_primaries(redis_client: RedisCluster) -> None:
    primaries = redis_client.get_primaries()
    assert len(primaries) == PRIMARIES
    for node in primaries:
        assert redis_client.cluster_info(target_nodes=node)["cluster_state"] == "ok"


def test_users_spread_over_every_primary_each_on_one_slot(stub: interest_pb2_grpc.
                                                          InterestServiceStub,
                                                          redis_client: RedisCluster,
                                                          catalog: list[pb.Item]) -> None:
    users = [f"spread-{n}" for n in range(60)]
    batch = [event(f"s-{u}-{j}", u, str(1 + (n + j) % 30), ts=1 + j)
             for n, u in enumerate(users) for j in range(3)]
    acks = stub.IngestEvents(pb.EventBatch(events=batch), timeout=30).acks
    assert [a.status for a in acks] == [pb.ACK_STATUS_APPLIED] * len(batch)

    nodes_used = set()
    for u in users:
        keys = user_keys(u).all()
        assert redis_client.exists(user_keys(u).record), f"{u}: its record exists"
        slots = {redis_client.keyslot(k) for k in keys}
        assert len(slots) == 1, f"{u}: keys on several slots {slots}"
        nodes_used.add(redis_client.get_node_from_key(keys[0]).name)
        state = stub.GetUserState(pb.GetUserStateRequest(user_id=u), timeout=10)
        assert state.event_count == 3 and state.version == 1
    assert len(nodes_used) == PRIMARIES, "60 users should land on all three primaries"


def test_concurrent_writes_to_users_on_all_shards_lose_nothing(
        stub: interest_pb2_grpc.InterestServiceStub, catalog: list[pb.Item]) -> None:
    users = [f"conc-{n}" for n in range(12)]
    errors: list[BaseException] = []

    def writer(w: int) -> None:
        try:
            for j in range(10):
                batch = [event(f"c{w}-{j}-{u}", u, str(1 + (w + j) % 30), ts=1 + j)
                         for u in users]
                stub.IngestEvents(pb.EventBatch(events=batch), timeout=30)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for u in users:
        state = stub.GetUserState(pb.GetUserStateRequest(user_id=u), timeout=10)
        assert state.event_count == 40, f"{u}: 4 writers x 10 batches, none lost"


def test_a_catalog_upsert_reaches_a_second_server_through_the_cluster(
        server: RunningServer, redis_cluster: EmbeddedRedisCluster,
        encoder: TextEncoder) -> None:
    other = create_server(settings_for(redis_cluster.url, redis_cluster=True), encoder=encoder)
    try:
        with grpc.insecure_channel(server.target) as ch_a, \
                grpc.insecure_channel(other.target) as ch_b:
            a = interest_pb2_grpc.InterestServiceStub(ch_a)
            b = interest_pb2_grpc.InterestServiceStub(ch_b)
            a.UpsertItems(iter([pb.UpsertItemsRequest(items=catalog_items())]), timeout=60)
            deadline = time.monotonic() + 1.0
            while other.engine.catalog_size() < 30 and time.monotonic() < deadline:
                time.sleep(0.02)
            assert other.engine.catalog_size() == 30, "B did not see A's upsert within 1 s"
            a.DeleteItems(pb.DeleteItemsRequest(item_ids=["13"]), timeout=10)
            deadline = time.monotonic() + 1.0
            while other.engine.catalog_size() > 29 and time.monotonic() < deadline:
                time.sleep(0.02)
            got = b.Recommend(pb.RecommendRequest(user_id="anyone", k=30), timeout=10)
            assert "13" not in [i.item_id for i in got.items] and len(got.items) == 29
    finally:
        other.stop(grace_s=0.5)


def _health(target: str) -> int:
    with grpc.insecure_channel(target) as channel:
        return health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=SERVICE_NAME), timeout=5).status


def test_a_primary_down_gives_unavailable_and_health_follows(
        server: RunningServer, stub: interest_pb2_grpc.InterestServiceStub,
        redis_client: RedisCluster, redis_cluster: EmbeddedRedisCluster,
        catalog: list[pb.Item]) -> None:
    victim = redis_cluster.nodes[2]
    user = next(u for u in (f"down-{n}" for n in range(1000))
                if redis_client.get_node_from_key(user_keys(u).state).port == victim.port)
    stub.IngestEvents(pb.EventBatch(events=[event("d1", user, "1", ts=1)]), timeout=10)
    victim.kill()
    try:
        with pytest.raises(grpc.RpcError) as err:
            stub.IngestEvents(pb.EventBatch(events=[event("d2", user, "2", ts=2)]), timeout=30)
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE, err.value.details()
        deadline = time.monotonic() + 10
        while _health(server.target) == health_pb2.HealthCheckResponse.SERVING:
            assert time.monotonic() < deadline, "health stayed SERVING with a primary down"
            time.sleep(0.1)
    finally:
        victim.start()
    deadline = time.monotonic() + 20
    while _health(server.target) != health_pb2.HealthCheckResponse.SERVING:
        assert time.monotonic() < deadline, "health did not come back with the primary"
        time.sleep(0.1)
    # The acked event survived (AOF), and the user takes writes again.
    while True:
        try:
            ack = stub.IngestEvents(pb.EventBatch(events=[event("d2", user, "2", ts=2)]),
                                    timeout=10)
            break
        except grpc.RpcError as exc:  # the client re-learns the slot map on its next calls
            assert exc.code() == grpc.StatusCode.UNAVAILABLE and time.monotonic() < deadline
            time.sleep(0.2)
    assert ack.acks[0].status == pb.ACK_STATUS_APPLIED and ack.acks[0].user_version == 2
