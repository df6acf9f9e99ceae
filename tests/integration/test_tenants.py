"""Tenants over a real port: isolated users, catalogs and concepts; tokens scoped to tenants."""

from __future__ import annotations

import time

import grpc
import pytest
import redis
from interest.v1 import interest_pb2 as pb
from interest.v1 import interest_pb2_grpc
from interest_client import InterestClient

from .conftest import MOVIES, catalog_items, event

Stub = interest_pb2_grpc.InterestServiceStub
ACME = [i for i in catalog_items() if int(i.item_id) <= 15]  # ids 1-15
GLOBEX = [pb.Item(item_id=i.item_id, text=i.text, attributes=i.attributes)  # the same ids,
          for i in catalog_items()[15:]]                                     # other movies
for n, item in enumerate(GLOBEX, 1):
    item.item_id = str(n)


def md(tenant: str | None = None, token: str | None = None) -> tuple[tuple[str, str], ...]:
    out: tuple[tuple[str, str], ...] = ()
    if tenant is not None:
        out += (("x-tenant-id", tenant),)
    if token is not None:
        out += (("authorization", f"Bearer {token}"),)
    return out


def upsert(stub: Stub, items: list[pb.Item], **kw: str) -> pb.UpsertItemsResponse:
    return stub.UpsertItems(iter([pb.UpsertItemsRequest(items=items)]), timeout=60,
                            metadata=md(**kw))


def texts(resp: pb.RecommendResponse) -> set[str]:
    return {i.text for i in resp.items}


def test_tenants_are_isolated(make_server, redis_client: redis.Redis) -> None:  # noqa: ANN001
    server = make_server()
    with grpc.insecure_channel(server.target) as channel:
        stub = Stub(channel)
        assert upsert(stub, ACME, tenant="acme").catalog_size == 15
        assert upsert(stub, GLOBEX, tenant="globex").catalog_size == 15
        acme_texts = {i.text for i in ACME}
        globex_texts = {i.text for i in GLOBEX}

        # The same user id and item id in two tenants are two users and two items.
        for tenant in ("acme", "globex"):
            ack = stub.IngestEvents(pb.EventBatch(events=[event("e1", "u1", "1", ts=1)]),
                                    timeout=10, metadata=md(tenant))
            assert ack.acks[0].status == pb.ACK_STATUS_APPLIED and ack.acks[0].user_version == 1
        stub.EncodeInterest(pb.EncodeInterestRequest(user_id="u1", text="I hate horror"),
                            timeout=30, metadata=md("globex"))
        acme = stub.Recommend(pb.RecommendRequest(user_id="u1", k=20), timeout=10,
                              metadata=md("acme"))
        globex = stub.Recommend(pb.RecommendRequest(user_id="u1", k=20), timeout=10,
                                metadata=md("globex"))
        assert texts(acme) <= acme_texts and len(acme.items) == 14
        assert texts(globex) <= globex_texts and globex.removed_by_dislikes > 0
        assert not any("Horror" in t for t in texts(globex))
        acme_state = stub.GetUserState(pb.GetUserStateRequest(user_id="u1"), timeout=10,
                                       metadata=md("acme"))
        assert acme_state.version == 1 and not acme_state.concepts, \
            "globex's concepts must not leak into acme"

        # The default tenant saw none of it: no catalog, no user.
        default_state = stub.GetUserState(pb.GetUserStateRequest(user_id="u1"), timeout=10)
        assert default_state.version == 0 and server.engine.catalog_size() == 0
        keys = [k.decode() for k in redis_client.scan_iter(count=1000)]
        assert keys and all(k.startswith(("t:acme:", "t:globex:")) for k in keys), keys

        # Erasing the user in one tenant leaves the other tenant's user alone.
        stub.DeleteUser(pb.DeleteUserRequest(user_id="u1"), timeout=10, metadata=md("acme"))
        assert stub.GetUserState(pb.GetUserStateRequest(user_id="u1"), timeout=10,
                                 metadata=md("acme")).version == 0
        assert stub.GetUserState(pb.GetUserStateRequest(user_id="u1"), timeout=10,
                                 metadata=md("globex")).version == 2

        # Deleting an item in one tenant leaves the same id in the other.
        stub.DeleteItems(pb.DeleteItemsRequest(item_ids=["2"]), timeout=10,
                         metadata=md("globex"))
        assert server.tenants is not None
        assert server.tenants.get("acme").catalog_size() == 15
        assert server.tenants.get("globex").catalog_size() == 14


def test_the_python_client_sends_its_tenant(make_server) -> None:  # noqa: ANN001
    server = make_server()
    with InterestClient(server.target, tenant="acme") as acme, \
            InterestClient(server.target) as default:
        acme.upsert_items(ACME)
        assert server.tenants.get("acme").catalog_size() == 15
        assert server.engine.catalog_size() == 0
        assert default.recommend("someone", k=5).items == []
    with pytest.raises(ValueError, match="tenant"):
        InterestClient(server.target, tenant="Not A Tenant")


@pytest.mark.parametrize("bad", ["Acme", "a b", "x" * 64, "-lead", "{tag}", "a:b"])
def test_a_bad_tenant_name_is_invalid_argument_and_writes_nothing(
        make_server, redis_client: redis.Redis, bad: str) -> None:  # noqa: ANN001
    server = make_server()
    with grpc.insecure_channel(server.target) as channel:
        stub = Stub(channel)
        with pytest.raises(grpc.RpcError) as err:
            stub.IngestEvents(pb.EventBatch(events=[event("e1", "u1", "1")]), timeout=10,
                              metadata=md(bad))
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "x-tenant-id" in err.value.details()
    assert redis_client.dbsize() == 0


def test_beyond_max_tenants_is_resource_exhausted(make_server) -> None:  # noqa: ANN001
    server = make_server(max_tenants=3)  # the default tenant and two more
    with grpc.insecure_channel(server.target) as channel:
        stub = Stub(channel)
        for tenant in ("t1", "t2"):
            upsert(stub, ACME[:3], tenant=tenant)
        with pytest.raises(grpc.RpcError) as err:
            upsert(stub, ACME[:3], tenant="t3")
        assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "max_tenants=3" in err.value.details()
        assert upsert(stub, ACME[:5], tenant="t1").catalog_size == 5  # the others still work


def test_a_tenant_catalog_upserted_on_one_replica_is_served_by_another(
        make_server) -> None:  # noqa: ANN001
    a, b = make_server(), make_server()
    with grpc.insecure_channel(a.target) as ch_a, grpc.insecure_channel(b.target) as ch_b:
        upsert(Stub(ch_a), GLOBEX, tenant="globex")
        got = Stub(ch_b).Recommend(pb.RecommendRequest(user_id="x", k=30), timeout=10,
                                   metadata=md("globex"))
        assert len(got.items) == 15 and texts(got) <= {i.text for i in GLOBEX}
        # B now follows globex's change stream: a later upsert on A reaches it.
        upsert(Stub(ch_a), [pb.Item(item_id="99", text=MOVIES[0][1])], tenant="globex")
        deadline = time.monotonic() + 1.0
        while b.tenants.get("globex").catalog_size() < 16:
            assert time.monotonic() < deadline, "B missed the upsert"
            time.sleep(0.02)


TOKENS = ("admin read,write; acme-rw read,write acme; acme-ro read acme; "
          "multi read,write acme,globex")


def test_tokens_scoped_to_tenants(make_server, redis_client: redis.Redis) -> None:  # noqa: ANN001
    server = make_server(auth_tokens=TOKENS)
    with grpc.insecure_channel(server.target) as channel:
        stub = Stub(channel)
        upsert(stub, ACME, tenant="acme", token="admin")
        upsert(stub, GLOBEX, tenant="globex", token="admin")

        # A token scoped to one tenant acts for it without naming it.
        ack = stub.IngestEvents(pb.EventBatch(events=[event("e1", "u1", "1")]), timeout=10,
                                metadata=md(token="acme-rw"))
        assert ack.acks[0].status == pb.ACK_STATUS_APPLIED
        assert redis_client.exists("t:acme:u:{u1}:rec")
        assert stub.GetUserState(pb.GetUserStateRequest(user_id="u1"), timeout=10,
                                 metadata=md("acme", "acme-ro")).version == 1

        def denied(tenant: str | None, token: str) -> grpc.RpcError:
            with pytest.raises(grpc.RpcError) as err:
                stub.GetUserState(pb.GetUserStateRequest(user_id="u1"), timeout=10,
                                  metadata=md(tenant, token))
            return err.value

        # ... and for no other.
        err = denied("globex", "acme-rw")
        assert err.code() == grpc.StatusCode.PERMISSION_DENIED and "globex" in err.details()
        err = denied(None, "multi")  # several tenants: it must say which
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "x-tenant-id" in err.details()
        assert stub.GetUserState(pb.GetUserStateRequest(user_id="u1"), timeout=10,
                                 metadata=md("globex", "multi")).version == 0
        # Scopes still apply within the tenant; an unscoped token reaches every tenant.
        with pytest.raises(grpc.RpcError) as info:
            stub.IngestEvents(pb.EventBatch(events=[event("e2", "u1", "2")]), timeout=10,
                              metadata=md("acme", "acme-ro"))
        assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert stub.GetUserState(pb.GetUserStateRequest(user_id="u1"), timeout=10,
                                 metadata=md("acme", "admin")).version == 1
        assert stub.GetUserState(pb.GetUserStateRequest(user_id="u1"), timeout=10,
                                 metadata=md(token="admin")).version == 0  # default tenant
        # A streaming call is refused before it reads anything.
        with pytest.raises(grpc.RpcError) as info:
            list(stub.StreamEvents(iter([pb.EventBatch(events=[event("e3", "u1", "3")])]),
                                   timeout=10, metadata=md("globex", "acme-rw")))
        assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert not redis_client.exists("t:globex:u:{u1}:rec")
