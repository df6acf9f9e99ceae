"""The event log against a real Redis (and a real 3-primary Redis Cluster): every acknowledged
event is in its user's capped stream, once, in order; duplicates and rejected events never are;
DeleteUser removes it; tenants are apart; read_event_log finds every log on every shard."""

from __future__ import annotations

import csv
import io
import threading
from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest
import redis
from interest.v1 import interest_pb2 as pb
from interest.v1 import interest_pb2_grpc
from interest_server.api.app import create_server
from interest_server.events import EventRecord, EventType, Outcome
from interest_server.model.encoder import TextEncoder
from interest_server.model.interest_model import DecayedAverageModel
from interest_server.offline.import_formats import build_event, detect_layout
from interest_server.state.event_log import (
    EVENT_ROW_HEADER,
    LoggedEvent,
    events_to_rows,
    read_event_log,
)
from interest_server.state.keys import DEFAULT_KEYS, KeySpace, user_keys
from interest_server.state.user_store import UserStateCache, UserStore
from redis.cluster import RedisCluster

from tests.redis_cluster import EmbeddedRedisCluster

from .conftest import event, settings_for

T0 = 1_800_000_000_000


def vector(item_id: str) -> np.ndarray:
    return np.ones(4, np.float32) * (1 + len(item_id))


def make_store(client: redis.Redis, maxlen: int = 1000, keys: KeySpace = DEFAULT_KEYS,
               cache: int = 0) -> UserStore:
    return UserStore(client, DecayedAverageModel(86400.0, dim=4), 50, 86400, 86400.0,
                     keys=keys, cache=UserStateCache(cache), event_log_maxlen=maxlen)


def ev(event_id: str, user: str, item: str, kind: EventType = EventType.LIKE,
       value: float | None = None, ts: int = T0) -> EventRecord:
    return EventRecord(event_id, user, item, kind, value, ts)


def logged(client: redis.Redis, user: str, keys: KeySpace = DEFAULT_KEYS) -> list[dict]:
    """The user's log entries' fields, oldest first, decoded."""
    return [{k.decode(): v.decode() for k, v in fields.items()}
            for _id, fields in client.xrange(keys.user(user).log)]


def test_acked_events_are_logged_in_order_with_their_fields(redis_client: redis.Redis) -> None:
    store = make_store(redis_client)
    results = store.apply_events([ev("a1", "ann", "m1"), ev("a2", "ann", "m2", EventType.RATING,
                                                              4.5, T0 + 7)], vector)
    assert [r.outcome for r in results] == [Outcome.APPLIED] * 2
    store.apply_events([ev("a3", "ann", "m3", EventType.VIEW, ts=0)], vector)  # no timestamp
    entries = logged(redis_client, "ann")
    assert entries[:2] == [{"i": "m1", "t": "3", "v": "", "ts": str(T0), "e": "a1"},
                           {"i": "m2", "t": "6", "v": "4.5", "ts": str(T0 + 7), "e": "a2"}]
    # An event without a timestamp is logged at its receive time, as the record keeps it.
    assert entries[2]["e"] == "a3" and int(entries[2]["ts"]) > T0 - 10**11
    assert entries[2]["ts"] == str(store.snapshot("ann").recent[0]["ts"])
    assert list(read_event_log(redis_client, DEFAULT_KEYS, cluster=False)) == [
        LoggedEvent("ann", "m1", EventType.LIKE, None, T0, "a1"),
        LoggedEvent("ann", "m2", EventType.RATING, 4.5, T0 + 7, "a2"),
        LoggedEvent("ann", "m3", EventType.VIEW, None, int(entries[2]["ts"]), "a3")]


def test_duplicates_and_rejected_replays_never_reach_the_log(redis_client: redis.Redis) -> None:
    store = make_store(redis_client)
    store.apply_events([ev("d1", "bo", "m1"), ev("d2", "bo", "m2")], vector)
    results = store.apply_events([
        ev("d1", "bo", "m1"),          # duplicate of a stored event
        ev("d2", "bo", "m9"),          # its id, another payload: rejected
        ev("d3", "bo", "m3"),          # new
        ev("d3", "bo", "m3"),          # the same new event twice in one batch
        ev("d4", "bo", "m4"), ev("d4", "bo", "m5")],  # an id used twice in one batch
        vector)
    assert [r.outcome for r in results] == [
        Outcome.DUPLICATE, Outcome.REJECTED, Outcome.APPLIED, Outcome.DUPLICATE,
        Outcome.APPLIED, Outcome.REJECTED]
    assert [(e["e"], e["i"]) for e in logged(redis_client, "bo")] == [
        ("d1", "m1"), ("d2", "m2"), ("d3", "m3"), ("d4", "m4")]


def test_a_write_refused_by_the_compare_and_set_and_retried_logs_once(
        redis_client: redis.Redis) -> None:
    # A's cached record goes stale when B writes the user: A's next write is refused by the
    # script, re-read and retried, and its event must still be logged exactly once.
    a, b = make_store(redis_client, cache=100), make_store(redis_client, cache=100)
    refused: list[int] = []
    run_writes = a._run_writes

    def counting(calls):  # noqa: ANN001, ANN202 - instrumentation only, the real call runs
        replies = run_writes(calls)
        refused.extend(r for r in replies if r == 0)
        return replies

    a._run_writes = counting  # type: ignore[method-assign]
    a.apply_events([ev("r1", "cy", "m1")], vector)
    b.apply_events([ev("r2", "cy", "m2")], vector)
    assert a.apply_events([ev("r3", "cy", "m3")], vector)[0].outcome == Outcome.APPLIED
    assert refused == [0], "the stale cached write was refused once, then retried"
    assert [e["e"] for e in logged(redis_client, "cy")] == ["r1", "r2", "r3"]


def test_two_writers_racing_on_one_user_log_each_acked_event_once(
        redis_client: redis.Redis, redis_server: str) -> None:
    n = 150
    acked: list[str] = []
    lock = threading.Lock()
    errors: list[BaseException] = []

    def writer(name: str) -> None:
        client = redis.Redis.from_url(redis_server)
        store = make_store(client)
        try:
            for j in range(n):
                # Each batch also replays the writer's previous event: a duplicate, never logged.
                batch = [ev(f"{name}{j}", "race", f"m{j % 7}")]
                if j:
                    batch.append(ev(f"{name}{j - 1}", "race", f"m{(j - 1) % 7}"))
                results = store.apply_events(batch, vector)
                with lock:
                    acked.extend(e.event_id for e, r in zip(batch, results, strict=True)
                                 if r.outcome == Outcome.APPLIED)
        except BaseException as exc:  # noqa: BLE001 - reported by the test thread
            errors.append(exc)
        finally:
            client.close()

    threads = [threading.Thread(target=writer, args=(name,)) for name in ("x", "y")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    ids = [e["e"] for e in logged(redis_client, "race")]
    assert len(acked) == 2 * n
    assert len(ids) == len(acked) and sorted(ids) == sorted(acked)
    for name in ("x", "y"):  # each writer's events in the order it sent them
        assert [i for i in ids if i.startswith(name)] == [f"{name}{j}" for j in range(n)]


def test_the_cap_holds_and_keeps_the_newest(redis_client: redis.Redis) -> None:
    cap = 200
    store = make_store(redis_client, maxlen=cap)
    total = 1000
    for start in range(0, total, 50):
        store.apply_events([ev(f"c{j}", "dee", f"m{j}") for j in range(start, start + 50)],
                           vector)
    ids = [e["e"] for e in logged(redis_client, "dee")]
    # MAXLEN ~ trims whole stream nodes (at most stream-node-max-entries = 100 entries each).
    assert cap <= len(ids) <= cap + 100
    assert ids == [f"c{j}" for j in range(total - len(ids), total)]


def test_no_log_key_with_maxlen_zero(redis_client: redis.Redis) -> None:
    store = make_store(redis_client, maxlen=0)
    results = store.apply_events([ev(f"z{j}", f"zed{j % 3}", "m1") for j in range(9)], vector)
    assert all(r.outcome == Outcome.APPLIED for r in results)
    assert redis_client.exists(user_keys("zed0").record)
    assert not list(redis_client.scan_iter(match="*:log"))
    assert list(read_event_log(redis_client, DEFAULT_KEYS, cluster=False)) == []


def test_a_tenants_log_is_apart_from_another_tenants(redis_client: redis.Redis) -> None:
    acme, beta = KeySpace("acme"), KeySpace("acme-2")
    make_store(redis_client, keys=acme).apply_events([ev("t1", "u1", "m1")], vector)
    make_store(redis_client, keys=beta).apply_events([ev("t2", "u1", "m2")], vector)
    make_store(redis_client).apply_events([ev("t3", "u1", "m3")], vector)
    assert acme.user("u1").log == "t:acme:u:{u1}:log"
    read = {space.tenant: [(e.user_id, e.event_id) for e in read_event_log(
        redis_client, space, cluster=False)] for space in (acme, beta, DEFAULT_KEYS)}
    assert read == {"acme": [("u1", "t1")], "acme-2": [("u1", "t2")], "default": [("u1", "t3")]}


def test_user_ids_come_back_from_escaped_keys(redis_client: redis.Redis) -> None:
    users = ["a{b}%", "", "%7B", "x}:log", "plain"]
    make_store(redis_client).apply_events([ev(f"e{n}", u, "m1") for n, u in enumerate(users)],
                                          vector)
    read = sorted((e.user_id, e.event_id) for e in read_event_log(redis_client, DEFAULT_KEYS,
                                                                  cluster=False))
    assert read == sorted((u, f"e{n}") for n, u in enumerate(users))


def test_a_long_log_is_read_in_pages(redis_client: redis.Redis,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from interest_server.state import event_log
    monkeypatch.setattr(event_log, "PAGE", 7)  # so 30 entries take five XRANGE pages
    make_store(redis_client).apply_events([ev(f"p{j}", "pat", f"m{j}") for j in range(30)],
                                          vector)
    assert [e.event_id for e in read_event_log(redis_client, DEFAULT_KEYS, cluster=False)] == [
        f"p{j}" for j in range(30)]


def test_rows_read_back_as_the_same_events_through_bulk_imports_layout(
        tmp_path: Path) -> None:
    events = [LoggedEvent("u1", "m1", EventType.RATING, 3.5, T0, "e1"),
              LoggedEvent("u,2", "m2", EventType.SKIP, None, T0 + 1, "e2")]
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(EVENT_ROW_HEADER)
    writer.writerows(events_to_rows(events))
    path = tmp_path / "events.csv"
    path.write_text(out.getvalue(), encoding="utf-8")
    layout = detect_layout(path)
    with path.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.reader(handle, delimiter=layout.delimiter))[1:]
    back = [build_event(row, n, layout, "x", {}) for n, row in enumerate(rows, 2)]
    assert [(e.user_id, e.item_id, e.type, e.value if e.HasField("value") else None,
             e.timestamp_ms, e.event_id) for e in back] == [
        (e.user_id, e.item_id, int(e.type), e.value, e.timestamp_ms, e.event_id) for e in events]


# ---- through the server: Settings reach the store, DeleteUser ---------------------------


def test_the_server_logs_acks_and_delete_user_removes_the_log(
        redis_client: redis.Redis, redis_server: str, encoder: TextEncoder) -> None:
    # The rules extractor: this test is about events, not concepts.
    running = create_server(settings_for(redis_server, concept_extractor="rules"), encoder=encoder)
    try:
        with grpc.insecure_channel(running.target) as channel:
            stub = interest_pb2_grpc.InterestServiceStub(channel)
            stub.UpsertItems(iter([pb.UpsertItemsRequest(items=[
                pb.Item(item_id="1", text="Vertigo (1958). Genres: Mystery")])]), timeout=60)
            acks = stub.IngestEvents(pb.EventBatch(events=[
                event("s1", "ivy{x}", "1"), event("s1", "ivy{x}", "1"),
                event("s2", "ivy{x}", "nope")]), timeout=30).acks
            assert [a.status for a in acks] == [pb.ACK_STATUS_APPLIED, pb.ACK_STATUS_DUPLICATE,
                                                pb.ACK_STATUS_REJECTED]
            log = user_keys("ivy{x}").log
            assert [e["e"] for e in logged(redis_client, "ivy{x}")] == ["s1"]
            resp = stub.DeleteUser(pb.DeleteUserRequest(user_id="ivy{x}"), timeout=10)
            assert resp.keys_deleted == 2  # the record and the log
            assert not redis_client.exists(log)
            assert list(read_event_log(redis_client, DEFAULT_KEYS, cluster=False)) == []
    finally:
        running.stop(grace_s=0.5)


def test_the_user_ttl_covers_the_log(redis_client: redis.Redis) -> None:
    store = UserStore(redis_client, DecayedAverageModel(86400.0, dim=4), 50, 86400, 86400.0,
                      user_ttl_s=600, event_log_maxlen=100)
    store.apply_events([ev("l1", "tia", "m1")], vector)
    assert 0 < redis_client.ttl(user_keys("tia").log) <= 600
    store.user_ttl_s = 0  # the TTL turned off: the next write removes the expiry
    store.apply_events([ev("l2", "tia", "m2")], vector)
    assert redis_client.ttl(user_keys("tia").log) == -1


# ---- on a Redis Cluster -------------------------------------------------------------------


@pytest.fixture(scope="module")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedRedisCluster]:
    cluster = EmbeddedRedisCluster(Path(tmp_path_factory.mktemp("cluster")), 3)
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.mark.redis_sensitive
def test_on_a_cluster_logs_spread_over_the_shards_and_are_all_read(
        redis_cluster: EmbeddedRedisCluster) -> None:
    client = RedisCluster.from_url(redis_cluster.url)
    try:
        client.flushall(target_nodes=RedisCluster.PRIMARIES)
        keys = KeySpace("acme")
        store = make_store(client, keys=keys)
        users = [f"cu{n}" for n in range(40)]
        results = store.apply_events([ev(f"k{n}.{j}", u, f"m{j}") for n, u in enumerate(users)
                                      for j in range(3)], vector)
        assert all(r.outcome == Outcome.APPLIED for r in results)
        make_store(client).apply_events([ev("other", "cu0", "m1")], vector)  # default tenant
        nodes = {client.get_node_from_key(keys.user(u).log).name for u in users}
        assert len(nodes) > 1, "the logs of 40 users should lie on more than one primary"
        for u in users:
            assert client.keyslot(keys.user(u).log) == client.keyslot(keys.user(u).record)
        read = [(e.user_id, e.event_id) for e in read_event_log(client, keys, cluster=True)]
        assert sorted(read) == sorted((u, f"k{n}.{j}") for n, u in enumerate(users)
                                      for j in range(3))
        # Per user, in acknowledgement order.
        assert [i for u, i in read if u == "cu7"] == ["k7.0", "k7.1", "k7.2"]
        assert store.delete_user("cu7") == 2  # record and log, one slot
        assert not client.exists(keys.user("cu7").log)
    finally:
        client.close()
