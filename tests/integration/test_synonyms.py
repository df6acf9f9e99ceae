"""SetAttributeSynonyms over a real port: Chinese synonyms ground a Chinese description, replace
and delete, the per-tenant cap, the write scope, replicas following, tenants apart."""

from __future__ import annotations

import json
import time
from pathlib import Path

import grpc
import pytest
import redis
from interest.v1 import interest_pb2 as pb
from interest.v1 import interest_pb2_grpc
from interest_client import InterestClient, cli

from .conftest import GENRES, catalog_items, event

Stub = interest_pb2_grpc.InterestServiceStub
ROOT = Path(__file__).resolve().parents[2]
SENTENCE = "喜欢悬疑电影，讨厌爱情电影"  # love mystery films, hate romance films
CHINESE = {"genre": {"Mystery": ["悬疑", "推理"], "Romance": ["爱情", "浪漫"]}}
FOLLOW_S = 1.0
"""Synonyms set on one server are used by another within this (the catalog's promise)."""


def entries(mapping: dict[str, dict[str, list[str]]]) -> list[pb.AttributeSynonyms]:
    return [pb.AttributeSynonyms(attribute=a, value=v, synonyms=s)
            for a, values in mapping.items() for v, s in values.items()]


def set_synonyms(stub: Stub, mapping: dict[str, dict[str, list[str]]], **kw: object
                 ) -> pb.SetAttributeSynonymsResponse:
    return stub.SetAttributeSynonyms(pb.SetAttributeSynonymsRequest(entries=entries(mapping)),
                                     timeout=30, **kw)


def links(resp: pb.EncodeInterestResponse) -> list[tuple[str, int, list[tuple[str, float]]]]:
    return [(c.phrase, c.polarity, [(link.value, round(link.similarity, 3)) for link in c.links])
            for c in resp.concepts]


def encode(stub: Stub, user: str, text: str = SENTENCE, **kw: object) -> pb.EncodeInterestResponse:
    return stub.EncodeInterest(pb.EncodeInterestRequest(
        user_id=user, text=text, mode=pb.ENCODE_MODE_REPLACE), timeout=30, **kw)


def stored(redis_client: redis.Redis, key: str = "catalog:synonyms") -> dict[str, list[str]]:
    return {f.decode(): json.loads(v) for f, v in redis_client.hgetall(key).items()}


def test_chinese_description_links_genres_and_drops_romance(stub: Stub, catalog) -> None:  # noqa: ANN001
    # Without synonyms the English encoder links neither phrase to its genre.
    before = links(encode(stub, "mei"))
    assert [p for p, _, _ in before] == ["悬疑电影", "爱情电影"]
    assert not any(("Mystery", 1.0) in ls or ("Romance", 1.0) in ls for _, _, ls in before)

    written = set_synonyms(stub, CHINESE)
    assert (written.stored, written.deleted, written.total_synonyms) == (2, 0, 4)
    stub.IngestEvents(pb.EventBatch(events=[event("v1", "mei", "3")]), timeout=10)  # Vertigo
    found = encode(stub, "mei")
    assert links(found) == [("悬疑电影", pb.POLARITY_POSITIVE, [("Mystery", 1.0)]),
                            ("爱情电影", pb.POLARITY_NEGATIVE, [("Romance", 1.0)])]
    got = stub.Recommend(pb.RecommendRequest(user_id="mei", k=10), timeout=10)
    genres = [GENRES[i.item_id] for i in got.items]
    assert genres and not any("Romance" in g for g in genres), genres
    assert all("Mystery" in g for g in genres[:4]), genres
    # GetUserState grounds the stored concepts the same way.
    state = stub.GetUserState(pb.GetUserStateRequest(user_id="mei"), timeout=10)
    assert [[link.value for link in c.links] for c in state.concepts] == [["Mystery"],
                                                                          ["Romance"]]


def test_replace_and_delete(stub: Stub, catalog, redis_client: redis.Redis) -> None:  # noqa: ANN001
    set_synonyms(stub, CHINESE)
    # A list is replaced whole; values not named keep theirs.
    written = set_synonyms(stub, {"genre": {"Mystery": ["侦探"]}})
    assert (written.stored, written.deleted, written.total_synonyms) == (1, 0, 3)
    assert stored(redis_client) == {"genre\x1fMystery": ["侦探"],
                                    "genre\x1fRomance": ["爱情", "浪漫"]}
    assert links(encode(stub, "li", "喜欢悬疑电影"))[0][2] != [("Mystery", 1.0)]
    assert links(encode(stub, "li", "喜欢侦探电影"))[0][2] == [("Mystery", 1.0)]
    # An empty list deletes; deleting what is not there counts nothing.
    written = set_synonyms(stub, {"genre": {"Romance": [], "Western": []}})
    assert (written.stored, written.deleted, written.total_synonyms) == (0, 1, 1)
    assert stored(redis_client) == {"genre\x1fMystery": ["侦探"]}
    assert links(encode(stub, "li", "讨厌爱情电影"))[0][2] != [("Romance", 1.0)]


def test_bad_input_is_invalid_argument_and_changes_nothing(stub: Stub,
                                                           redis_client: redis.Redis) -> None:
    set_synonyms(stub, CHINESE)
    before = stored(redis_client)
    for bad in ({"": {"Mystery": ["悬疑"]}}, {"genre": {"": ["悬疑"]}},
                {"genre": {"Mystery": ["x" * 129]}}, {"genre": {"Mystery": ["悬疑", ""]}},
                {"genre": {"Mystery": ["!!"]}}, {"genre": {"Mystery": ["bad\nline"]}}):
        with pytest.raises(grpc.RpcError) as err:
            set_synonyms(stub, bad)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, bad
    with pytest.raises(grpc.RpcError) as err:
        stub.SetAttributeSynonyms(pb.SetAttributeSynonymsRequest(), timeout=10)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "entries is empty" in err.value.details()
    assert stored(redis_client) == before


def test_the_cap_refuses_and_changes_nothing(make_server, redis_client: redis.Redis) -> None:  # noqa: ANN001
    server = make_server(max_synonyms_per_tenant=5)
    with grpc.insecure_channel(server.target) as channel:
        stub = Stub(channel)
        assert set_synonyms(stub, CHINESE).total_synonyms == 4
        before = stored(redis_client)
        with pytest.raises(grpc.RpcError) as err:
            set_synonyms(stub, {"genre": {"Comedy": ["喜剧", "搞笑"]}})
        assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "max_synonyms_per_tenant" in err.value.details()
        assert "leave 6" in err.value.details() and "limit is 5" in err.value.details()
        assert stored(redis_client) == before
        # Replacing within the cap is fine, counted after the replacement: 2 + 1 + 2 = 5.
        written = set_synonyms(stub, {"genre": {"Mystery": ["悬疑"], "Comedy": ["喜剧", "搞笑"]}})
        assert written.total_synonyms == 5


def test_a_read_token_may_not_set_synonyms(make_server, redis_client: redis.Redis) -> None:  # noqa: ANN001
    server = make_server(auth_tokens="w-token write;r-token read")
    with grpc.insecure_channel(server.target) as channel:
        stub = Stub(channel)
        with pytest.raises(grpc.RpcError) as err:
            set_synonyms(stub, CHINESE, metadata=(("authorization", "Bearer r-token"),))
        assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert stored(redis_client) == {}
        set_synonyms(stub, CHINESE, metadata=(("authorization", "Bearer w-token"),))
        assert len(stored(redis_client)) == 2


def test_a_second_server_follows(make_server) -> None:  # noqa: ANN001
    a, b = make_server(), make_server()
    with grpc.insecure_channel(a.target) as ca, grpc.insecure_channel(b.target) as cb:
        stub_a, stub_b = Stub(ca), Stub(cb)
        stub_a.UpsertItems(iter([pb.UpsertItemsRequest(items=catalog_items())]), timeout=60)
        # B has the catalog (so grounding has the genre vocabulary) before the synonyms change.
        deadline = time.monotonic() + 10
        while b.tenants.default.catalog_size() < 30 and time.monotonic() < deadline:
            time.sleep(0.02)
        start = time.monotonic()
        set_synonyms(stub_a, CHINESE)
        while links(encode(stub_b, "zhou"))[0][2] != [("Mystery", 1.0)]:
            assert time.monotonic() - start < 10, "B never used the synonyms set on A"
            time.sleep(0.02)
        took = time.monotonic() - start
        print(f"\nsynonyms set on A -> used on B after {took:.3f} s")
        assert took <= FOLLOW_S + 1.0  # the promise, plus slack for a loaded machine
        # A deletion follows the same way.
        set_synonyms(stub_a, {"genre": {"Mystery": [], "Romance": []}})
        deadline = time.monotonic() + 10
        while links(encode(stub_b, "zhou"))[0][2] == [("Mystery", 1.0)]:
            assert time.monotonic() < deadline, "B kept deleted synonyms"
            time.sleep(0.02)


def test_tenants_are_isolated(server, redis_client: redis.Redis) -> None:  # noqa: ANN001
    with InterestClient(server.target, tenant="acme") as acme, \
            InterestClient(server.target, tenant="globex") as globex:
        for client in (acme, globex):
            client.upsert_items([{"item_id": i.item_id, "text": i.text,
                                  "attributes": {"genre": list(i.attributes[0].values)}}
                                 for i in catalog_items()])
        assert acme.set_attribute_synonyms(CHINESE).total_synonyms == 4
        assert stored(redis_client, "t:acme:catalog:synonyms")
        assert not redis_client.exists("t:globex:catalog:synonyms", "catalog:synonyms")
        acme_links = [c.links[0].value for c in acme.encode_interest("u", SENTENCE).concepts
                      if c.links]
        assert acme_links == ["Mystery", "Romance"]
        assert not any(link.similarity == pytest.approx(1.0)
                       for c in globex.encode_interest("u", SENTENCE).concepts
                       for link in c.links)


def test_the_shipped_movielens_synonyms_load_through_the_client(server) -> None:  # noqa: ANN001
    mapping = json.loads((ROOT / "examples" / "movielens" / "synonyms.json").read_text("utf-8"))
    with InterestClient(server.target, timeout_s=30) as client:
        written = client.set_attribute_synonyms(mapping)
    assert written.stored == 18
    assert written.total_synonyms == sum(len(v) for v in mapping["genre"].values())


def test_the_cli_sets_synonyms_from_a_file(server, tmp_path: Path,  # noqa: ANN001
                                           redis_client: redis.Redis,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "synonyms.json"
    path.write_text(json.dumps(CHINESE, ensure_ascii=False), encoding="utf-8")
    assert cli.main(["--target", server.target, "set-synonyms", "--file", str(path)]) == 0
    assert "stored 2 list(s), deleted 0; the tenant holds 4 synonym(s)" in capsys.readouterr().out
    assert stored(redis_client) == {"genre\x1fMystery": ["悬疑", "推理"],
                                    "genre\x1fRomance": ["爱情", "浪漫"]}
    path.write_text('{"genre": ["Mystery"]}', encoding="utf-8")
    assert cli.main(["--target", server.target, "set-synonyms", "--file", str(path)]) == 1
    assert "must map value" in capsys.readouterr().err
