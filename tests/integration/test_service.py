"""Every RPC over a real port against a real Redis and the real language model."""

from __future__ import annotations

import grpc
import numpy as np
import pytest
import redis
from google.protobuf import descriptor_pool
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)
from interest.v1 import interest_pb2 as pb
from interest_server.state.keys import user_key_pattern

from .conftest import GENRES, catalog_items, event

pytestmark = pytest.mark.usefixtures("catalog")


def recommend(stub, user: str, k: int = 10, **options) -> pb.RecommendResponse:  # noqa: ANN001
    return stub.Recommend(pb.RecommendRequest(user_id=user, k=k,
                                              options=pb.RecommendOptions(**options)), timeout=30)


def ids(resp: pb.RecommendResponse) -> list[str]:
    return [i.item_id for i in resp.items]


def user_keys_in_redis(client: redis.Redis, user: str) -> list[bytes]:
    return list(client.scan_iter(match=user_key_pattern(user)))


def test_ingest_changes_recommendations_at_once(stub) -> None:  # noqa: ANN001
    cold = recommend(stub, "alice", k=5)
    assert cold.strategy == "popular"
    assert cold.user_version == 0
    texts = {item.item_id: item.text for item in catalog_items()}
    assert all(item.text == texts[item.item_id] for item in cold.items)

    ack = stub.IngestEvents(pb.EventBatch(batch_id="b1", events=[
        event("e1", "alice", "13", ts=1_000), event("e2", "alice", "14", ts=2_000)]), timeout=10)
    assert ack.batch_id == "b1"
    assert [a.status for a in ack.acks] == [pb.ACK_STATUS_APPLIED] * 2
    assert ack.applied == 2 and ack.acks[0].user_version == 1

    warm = recommend(stub, "alice", k=5)
    assert warm.strategy == "behaviour"
    assert warm.user_version == 1
    assert "13" not in ids(warm) and "14" not in ids(warm), "consumed items are excluded"
    assert sum("Sci-Fi" in GENRES[i] for i in ids(warm)) >= 3, ids(warm)
    top_reason = warm.items[0].reasons[0]
    assert top_reason.kind == pb.REASON_KIND_RECENT_ITEM
    assert "because you liked" in top_reason.text


def test_stream_events_acks_each_batch_in_order(stub) -> None:  # noqa: ANN001
    batches = [pb.EventBatch(batch_id=f"b{n}", events=[
        event(f"s{n}-{j}", f"user{j}", str(1 + (n + j) % 30), ts=n * 100 + j)
        for j in range(5)]) for n in range(20)]
    acks = list(stub.StreamEvents(iter(batches), timeout=60))
    assert [a.batch_id for a in acks] == [b.batch_id for b in batches]
    for batch, ack in zip(batches, acks, strict=True):
        assert [a.event_id for a in ack.acks] == [e.event_id for e in batch.events]
        assert ack.applied == 5


def test_one_bad_event_never_ends_the_stream(stub) -> None:  # noqa: ANN001
    batches = [
        pb.EventBatch(batch_id="ok1", events=[event("g1", "bob", "1")]),
        pb.EventBatch(batch_id="bad", events=[
            event("g2", "bob", "no-such-item"),
            event("", "bob", "2"),
            event("g3", "bob", "2", kind=pb.EVENT_TYPE_RATING),  # rating without value
            event("g4", "bob", "2", kind=99),
            event("g5", "bob", "3"),
        ]),
        pb.EventBatch(batch_id="ok2", events=[event("g6", "bob", "4")]),
    ]
    acks = list(stub.StreamEvents(iter(batches), timeout=30))
    assert [a.batch_id for a in acks] == ["ok1", "bad", "ok2"]
    bad = acks[1].acks
    assert bad[0].status == pb.ACK_STATUS_REJECTED
    assert bad[0].reason == pb.REJECT_REASON_UNKNOWN_ITEM and "no-such-item" in bad[0].message
    assert bad[1].reason == pb.REJECT_REASON_INVALID_FIELD and "event_id" in bad[1].message
    assert bad[2].reason == pb.REJECT_REASON_INVALID_FIELD and "value" in bad[2].message
    assert bad[3].reason == pb.REJECT_REASON_INVALID_FIELD and "type" in bad[3].message
    assert bad[4].status == pb.ACK_STATUS_APPLIED
    assert acks[2].acks[0].status == pb.ACK_STATUS_APPLIED
    state = stub.GetUserState(pb.GetUserStateRequest(user_id="bob"), timeout=10)
    assert state.event_count == 3


def test_same_thousand_events_twice_equals_once(stub, redis_client) -> None:  # noqa: ANN001
    rng = np.random.default_rng(7)
    events = [event(f"d{i}", f"u{i % 10}", str(rng.integers(1, 31)),
                    kind=int(rng.choice([1, 2, 3, 4, 5, 7])), ts=1_000 + i)
              for i in range(1000)]
    batches = [pb.EventBatch(batch_id=str(n), events=events[n:n + 100])
               for n in range(0, 1000, 100)]
    first = list(stub.StreamEvents(iter(batches), timeout=60))
    assert sum(a.applied for a in first) == 1000

    def dump() -> dict:
        out = {}
        for user in (f"u{i}" for i in range(10)):
            state = stub.GetUserState(pb.GetUserStateRequest(user_id=user, include_vector=True),
                                      timeout=10)
            keys = sorted(user_keys_in_redis(redis_client, user))
            out[user] = (state.SerializeToString(deterministic=True),
                         [redis_client.dump(k) for k in keys])
        return out

    before = dump()
    second = list(stub.StreamEvents(iter(batches), timeout=60))
    assert sum(a.duplicates for a in second) == 1000
    assert sum(a.applied for a in second) == 0
    assert all(a.status == pb.ACK_STATUS_DUPLICATE for b in second for a in b.acks)
    assert dump() == before


def test_conflicting_replay_is_rejected_and_changes_nothing(stub) -> None:  # noqa: ANN001
    stub.IngestEvents(pb.EventBatch(events=[event("c1", "carol", "1", ts=5)]), timeout=10)
    before = stub.GetUserState(pb.GetUserStateRequest(user_id="carol", include_vector=True))
    ack = stub.IngestEvents(pb.EventBatch(events=[event("c1", "carol", "2", ts=5)]), timeout=10)
    assert ack.acks[0].status == pb.ACK_STATUS_REJECTED
    assert ack.acks[0].reason == pb.REJECT_REASON_CONFLICTING_REPLAY
    after = stub.GetUserState(pb.GetUserStateRequest(user_id="carol", include_vector=True))
    assert after == before


def test_stated_interests_turn_the_list_and_filter_dislikes(stub) -> None:  # noqa: ANN001
    stub.IngestEvents(pb.EventBatch(events=[event("x1", "dave", "13", ts=1),
                                            event("x2", "dave", "16", ts=2)]), timeout=10)
    resp = stub.EncodeInterest(pb.EncodeInterestRequest(
        user_id="dave", text="I love mystery films, I hate romance"), timeout=30)
    polarity = {c.phrase: c.polarity for c in resp.concepts}
    assert any("mystery" in p and pol == pb.POLARITY_POSITIVE for p, pol in polarity.items())
    assert any("romance" in p and pol == pb.POLARITY_NEGATIVE for p, pol in polarity.items())
    links = {(link.name, link.value) for c in resp.concepts for link in c.links}
    assert ("genre", "Mystery") in links and ("genre", "Romance") in links

    after = recommend(stub, "dave", k=8)
    assert after.strategy == "behaviour+concepts"
    assert not any("Romance" in GENRES[i] for i in ids(after)), ids(after)
    assert sum("Mystery" in GENRES[i] for i in ids(after)) >= 6, ids(after)
    assert after.removed_by_dislikes == sum("Romance" in g for g in GENRES.values())
    assert any("mystery" in r.text for r in after.items[0].reasons)


def test_concepts_alone_lead_a_user_without_behaviour(stub) -> None:  # noqa: ANN001
    stub.EncodeInterest(pb.EncodeInterestRequest(
        user_id="erin", text="Big fan of science fiction; no horror please."), timeout=30)
    resp = recommend(stub, "erin", k=5)
    assert resp.strategy == "concepts"
    assert all("Sci-Fi" in GENRES[i] and "Horror" not in GENRES[i] for i in ids(resp))


def test_encode_interest_merge_and_replace(stub) -> None:  # noqa: ANN001
    stub.EncodeInterest(pb.EncodeInterestRequest(user_id="fay", text="I love westerns"))
    merged = stub.EncodeInterest(pb.EncodeInterestRequest(
        user_id="fay", text="I hate horror", mode=pb.ENCODE_MODE_MERGE))
    assert {c.polarity for c in merged.stored} == {pb.POLARITY_POSITIVE, pb.POLARITY_NEGATIVE}
    assert len(merged.stored) == 2
    replaced = stub.EncodeInterest(pb.EncodeInterestRequest(
        user_id="fay", text="I like comedies", mode=pb.ENCODE_MODE_REPLACE))
    assert [c.phrase for c in replaced.stored] == [c.phrase for c in replaced.concepts]
    state = stub.GetUserState(pb.GetUserStateRequest(user_id="fay"))
    assert [c.phrase for c in state.concepts] == [c.phrase for c in replaced.stored]


def test_request_filters_and_exclusions(stub) -> None:  # noqa: ANN001
    resp = recommend(stub, "gus", k=30, include=[pb.AttributeFilter(name="genre",
                                                                    values=["Comedy"])],
                     exclude=[pb.AttributeFilter(name="genre", values=["Romance"])],
                     exclude_item_ids=["21"])
    got = ids(resp)
    assert got and all("Comedy" in GENRES[i] and "Romance" not in GENRES[i] for i in got)
    assert "21" not in got
    assert resp.removed_by_filters == 30 - len(got)


def test_get_user_state_reports_window_and_vector(stub) -> None:  # noqa: ANN001
    stub.IngestEvents(pb.EventBatch(events=[
        event("w1", "hal", "1", ts=10), event("w2", "hal", "2", kind=pb.EVENT_TYPE_RATING,
                                              value=4.5, ts=20)]))
    state = stub.GetUserState(pb.GetUserStateRequest(user_id="hal", include_vector=True))
    assert state.version == 1 and state.event_count == 2 and state.consumed_count == 2
    assert [e.event_id for e in state.recent_events] == ["w2", "w1"]
    assert state.recent_events[0].value == 4.5
    assert len(state.interest_vector) == 384
    assert abs(np.linalg.norm(state.interest_vector) - 1) < 1e-4
    unknown = stub.GetUserState(pb.GetUserStateRequest(user_id="nobody"))
    assert unknown.version == 0 and not unknown.recent_events


def test_delete_user_leaves_no_key(stub, redis_client) -> None:  # noqa: ANN001
    stub.IngestEvents(pb.EventBatch(events=[event("z1", "ivy{x}", "1")]))
    stub.EncodeInterest(pb.EncodeInterestRequest(user_id="ivy{x}", text="I like comedies"))
    assert user_keys_in_redis(redis_client, "ivy{x}")
    resp = stub.DeleteUser(pb.DeleteUserRequest(user_id="ivy{x}"))
    assert resp.keys_deleted == 3  # the behaviour record, the concepts and the event log
    assert user_keys_in_redis(redis_client, "ivy{x}") == []
    assert stub.GetUserState(pb.GetUserStateRequest(user_id="ivy{x}")).version == 0


def test_upsert_and_delete_items(stub) -> None:  # noqa: ANN001
    resp = stub.UpsertItems(iter([pb.UpsertItemsRequest(items=[pb.Item(
        item_id="new", text="Knives Out (2019). Genres: Mystery, Comedy",
        attributes=[pb.Attribute(name="genre", values=["Mystery", "Comedy"])])])]))
    assert resp.upserted == 1 and resp.catalog_size == 31
    got = recommend(stub, "jo", k=31)
    assert "new" in ids(got)
    deleted = stub.DeleteItems(pb.DeleteItemsRequest(item_ids=["new", "missing"]))
    assert deleted.deleted == 1 and deleted.catalog_size == 30
    assert "new" not in ids(recommend(stub, "jo", k=31))
    ack = stub.IngestEvents(pb.EventBatch(events=[event("n1", "jo", "new")]))
    assert ack.acks[0].reason == pb.REJECT_REASON_UNKNOWN_ITEM


@pytest.mark.parametrize(("call", "field"), [
    (lambda s: s.Recommend(pb.RecommendRequest(user_id="")), "user_id"),
    (lambda s: s.Recommend(pb.RecommendRequest(user_id="u", k=100_000)), "k"),
    (lambda s: s.Recommend(pb.RecommendRequest(user_id="u", options=pb.RecommendOptions(
        theta=float("nan")))), "theta"),
    (lambda s: s.Recommend(pb.RecommendRequest(user_id="x" * 1000)), "user_id"),
    (lambda s: s.EncodeInterest(pb.EncodeInterestRequest(user_id="u", text="")), "text"),
    (lambda s: s.EncodeInterest(pb.EncodeInterestRequest(user_id="u", text="a" * 5000)),
     "text"),
    (lambda s: s.EncodeInterest(pb.EncodeInterestRequest(user_id="u", text="hi", mode=9)),
     "mode"),
    (lambda s: s.IngestEvents(pb.EventBatch(events=[])), "events"),
    (lambda s: s.IngestEvents(pb.EventBatch(events=[event(str(i), "u", "1")
                                                    for i in range(1001)])), "events"),
    (lambda s: s.UpsertItems(iter([pb.UpsertItemsRequest(items=[pb.Item(item_id="a")])])),
     "text"),
    (lambda s: s.DeleteItems(pb.DeleteItemsRequest(item_ids=[""])), "item_ids"),
    (lambda s: s.GetUserState(pb.GetUserStateRequest(user_id="\x00")), "user_id"),
    (lambda s: s.DeleteUser(pb.DeleteUserRequest()), "user_id"),
])
def test_invalid_requests_get_invalid_argument_naming_the_field(stub, redis_client, call,
                                                                 field) -> None:  # noqa: ANN001
    keys_before = sorted(redis_client.keys())
    with pytest.raises(grpc.RpcError) as info:
        call(stub)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in info.value.details()
    assert sorted(redis_client.keys()) == keys_before


def test_unexpected_fault_is_internal_with_request_id_and_no_detail(server, stub,
                                                                    monkeypatch) -> None:  # noqa: ANN001
    def boom(*_args, **_kwargs):  # noqa: ANN002, ANN003, ANN202
        raise RuntimeError("secret at redis://10.0.0.1:6379 key u:{x}:state")

    monkeypatch.setattr(server.engine, "recommend", boom)
    with pytest.raises(grpc.RpcError) as info:
        recommend(stub, "kim")
    assert info.value.code() == grpc.StatusCode.INTERNAL
    assert "request id" in info.value.details()
    assert "redis" not in info.value.details() and "Traceback" not in info.value.details()


def test_health_and_reflection(server) -> None:  # noqa: ANN001
    with grpc.insecure_channel(server.target) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for name in ("", "interest.v1.InterestService"):
            status = health.Check(health_pb2.HealthCheckRequest(service=name), timeout=5).status
            assert status == health_pb2.HealthCheckResponse.SERVING
        pool = descriptor_pool.DescriptorPool(ProtoReflectionDescriptorDatabase(channel))
        service = pool.FindServiceByName("interest.v1.InterestService")
        assert {m.name for m in service.methods} >= {
            "StreamEvents", "IngestEvents", "EncodeInterest", "Recommend", "UpsertItems",
            "DeleteItems", "GetUserState", "DeleteUser"}


def test_read_your_writes_on_every_ack(stub) -> None:  # noqa: ANN001
    """An acked event is reflected by the very next Recommend (no settling time)."""
    for n, item in enumerate(["13", "14", "15", "16"]):
        ack = stub.IngestEvents(pb.EventBatch(events=[event(f"r{n}", "lee", item, ts=n)]))
        resp = recommend(stub, "lee", k=30)
        assert resp.user_version == ack.acks[0].user_version
        assert item not in ids(resp)


@pytest.mark.parametrize(("method", "streaming"), [
    ("Recommend", False), ("IngestEvents", False), ("StreamEvents", True), ("UpsertItems", True)])
def test_undecodable_bytes_get_invalid_argument(server, redis_client, method,
                                                streaming) -> None:  # noqa: ANN001
    # Field 1 (a string in every request type here) holding bytes that are not UTF-8.
    bad = b"\x0a\x02\xff\xfe"
    keys_before = sorted(redis_client.keys())
    with grpc.insecure_channel(server.target) as channel:
        path = f"/interest.v1.InterestService/{method}"
        with pytest.raises(grpc.RpcError) as info:
            if method == "StreamEvents":
                list(channel.stream_stream(path)(iter([bad]), timeout=10))
            elif streaming:
                channel.stream_unary(path)(iter([b"\x0a\x04\x0a\x02\xff\xfe"]), timeout=10)
            else:
                channel.unary_unary(path)(bad, timeout=10)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT, info.value.details()
    assert "not a valid interest.v1." in info.value.details()
    assert sorted(redis_client.keys()) == keys_before
