"""Another encoder (a multilingual one from --model-dir) and switching encoders on one Redis:
every vector a server uses is its own model's, whatever the stored data was made with.

The encoder here is tests/tiny_models.py's tiny random multilingual BERT (32-d), built by the
test: nothing is downloaded. The switch runs MiniLM (384-d) -> tiny -> MiniLM on the same Redis.
A learned interest checkpoint trained on another encoder is refused at start-up:
test_learned_model.py::test_checkpoint_of_another_text_model_is_refused.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest
import redis
from interest.v1 import interest_pb2 as pb
from interest.v1 import interest_pb2_grpc
from interest_server.api.app import RunningServer, create_server
from interest_server.errors import FailedPrecondition
from interest_server.model import conceptualizer as cz
from interest_server.model.encoder import TextEncoder
from interest_server.model.interest_model import DecayedAverageModel, WeightedItem, event_weight
from interest_server.state.keys import DEFAULT_KEYS
from interest_server.state.user_record import UserRecord
from interest_server.state.user_store import unpack_vector

from tests.integration.conftest import (
    MOVIES,
    catalog_items,
    event,
    settings_for,
    start_server_process,
)
from tests.tiny_models import TINY_HIDDEN, tiny_multilingual_encoder

FRENCH = "J'adore les comédies mais je déteste les films d'horreur."
CHINESE = "喜欢悬疑电影，讨厌爱情电影"
# (user, [(event id, item id, type, value, timestamp ms)]): a behaviour history per user.
HISTORIES: dict[str, list[tuple[str, str, int, float | None, int]]] = {
    "ana": [("a1", "1", pb.EVENT_TYPE_LIKE, None, 1_000), ("a2", "3", pb.EVENT_TYPE_VIEW, None,
                                                             2_000),
            ("a3", "9", pb.EVENT_TYPE_DISLIKE, None, 3_000)],
    "bo": [("b1", "13", pb.EVENT_TYPE_RATING, 5.0, 1_000),
           ("b2", "23", pb.EVENT_TYPE_RATING, 1.0, 1_500)],
}
CONCEPTS = {"ana": "I love mystery films but I hate romance", "cy": "I like science fiction"}


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny multilingual encoder directory, as an operator would copy one to the machine."""
    return tiny_multilingual_encoder(tmp_path_factory.mktemp("models") / "tiny-multilingual")


@pytest.fixture(scope="module")
def tiny(tiny_dir: Path) -> TextEncoder:
    enc = TextEncoder(str(tiny_dir))
    enc.warm()
    return enc


# The shipped concept head reads the default encoder's token states; a server on another
# encoder refuses it at start-up, so the tiny one runs the rules (or a head trained for it).
TINY_SETTINGS = {"concept_extractor": "rules"}


@pytest.fixture
def start(redis_client: redis.Redis, redis_server: str, tiny: TextEncoder) -> Iterator:
    """start(encoder) -> a server on the test's Redis; all are stopped at the end."""
    started: list[RunningServer] = []

    def make(encoder: TextEncoder) -> RunningServer:
        overrides = TINY_SETTINGS if encoder is tiny else {}
        started.append(create_server(settings_for(redis_server, **overrides), encoder=encoder))
        return started[-1]

    yield make
    for running in started:
        running.stop(grace_s=0.5)


def _stub(channel: grpc.Channel) -> interest_pb2_grpc.InterestServiceStub:
    return interest_pb2_grpc.InterestServiceStub(channel)


def _stored_items(client: redis.Redis) -> dict[str, tuple[str, np.ndarray]]:
    """item id -> (model id, vector) as stored in Redis."""
    out = {}
    for item_id, _, _ in MOVIES:
        raw = client.hgetall(DEFAULT_KEYS.item(item_id))
        vec = unpack_vector(raw[b"vec"])
        assert vec is not None
        out[item_id] = (raw[b"m"].decode(), vec)
    return out


def _expected_interest(user: str, vectors: dict[str, np.ndarray], half_life_s: float,
                       extra: tuple[tuple[str, str, int, float | None, int], ...] = ()
                       ) -> np.ndarray:
    """The decayed average over the user's events, with the given item vectors."""
    model = DecayedAverageModel(half_life_s)
    items = [WeightedItem(vectors[item], event_weight(kind, value), ts)
             for _, item, kind, value, ts in [*HISTORIES[user], *extra]]
    acc, _ = model.fold(None, 0, items, len(next(iter(vectors.values()))))
    out = model.interest(acc)
    assert out is not None
    return out


def _seed_users(stub: interest_pb2_grpc.InterestServiceStub) -> None:
    for user, history in HISTORIES.items():
        ack = stub.IngestEvents(pb.EventBatch(events=[
            event(eid, user, item, kind=kind, ts=ts, value=value)
            for eid, item, kind, value, ts in history]), timeout=30)
        assert all(a.status == pb.ACK_STATUS_APPLIED for a in ack.acks), ack
    for user, text in CONCEPTS.items():
        resp = stub.EncodeInterest(pb.EncodeInterestRequest(user_id=user, text=text), timeout=30)
        assert resp.stored, resp


def _check_served_by(running: RunningServer, encoder: TextEncoder,
                     client: redis.Redis) -> dict[str, np.ndarray]:
    """Every RPC answers, and every vector in use is `encoder`'s; returns the item vectors."""
    items = _stored_items(client)
    assert {m for m, _ in items.values()} == {encoder.model_id}  # re-embedded and written back
    assert {len(v) for _, v in items.values()} == {encoder.dim}
    vectors = {i: v for i, (_, v) in items.items()}
    index = running.engine.index
    for item_id, vec in vectors.items():
        np.testing.assert_allclose(index.vector(item_id), vec, atol=1e-6)
    with grpc.insecure_channel(running.target) as channel:
        stub = _stub(channel)
        for user in ["ana", "bo", "cy"]:
            rec = stub.Recommend(pb.RecommendRequest(user_id=user, k=5), timeout=30)
            assert len(rec.items) == 5, rec
            state = stub.GetUserState(pb.GetUserStateRequest(user_id=user, include_vector=True),
                                      timeout=30)
            if user in HISTORIES:
                # Recomputed from the stored window with this encoder's item vectors.
                assert rec.strategy != "popular", rec
                assert state.model == encoder.model_id, state
                np.testing.assert_allclose(
                    state.interest_vector,
                    _expected_interest(user, vectors, running.engine.settings.half_life_s),
                    atol=1e-5)
            if user in CONCEPTS:
                assert state.concepts, state
    # Stored concepts of another model are re-embedded when read (never compared across
    # spaces); a merge writes them back in this model's space.
    engine = running.engine
    for user in CONCEPTS:
        snap = engine.users.snapshot(user)
        current = engine.conceptualizer.current(cz.loads(snap.concepts_json))
        assert {c.model for c in current} == {encoder.model_id}
        assert {len(c.vector) for c in current} == {encoder.dim}
        assert {len(c.ground_vector) for c in current} == {encoder.dim}
    return vectors


def test_a_multilingual_model_dir_serves_every_rpc(redis_client: redis.Redis, redis_server: str,
                                                   tiny_dir: Path, tiny: TextEncoder) -> None:
    """`interest-server serve --model-dir DIR` with a (tiny) multilingual encoder directory."""
    proc = start_server_process(redis_server, extra_args=(
        "--model-dir", str(tiny_dir), "--concept-extractor", TINY_SETTINGS["concept_extractor"]))
    try:
        with grpc.insecure_channel(proc.target) as channel:
            stub = _stub(channel)
            up = stub.UpsertItems(iter([pb.UpsertItemsRequest(items=catalog_items())]),
                                  timeout=60)
            assert up.model == tiny.model_id and up.upserted == len(MOVIES)
            assert tiny.dim == TINY_HIDDEN
            raw = redis_client.hgetall(DEFAULT_KEYS.item("1"))
            assert raw[b"m"].decode() == tiny.model_id
            assert len(raw[b"vec"]) == 4 * TINY_HIDDEN
            ack = stub.IngestEvents(pb.EventBatch(events=[
                event("f1", "amelie", "7", ts=1_000), event("f2", "amelie", "21", ts=2_000)]),
                timeout=30)
            assert [a.status for a in ack.acks] == [pb.ACK_STATUS_APPLIED] * 2
            for user, text in (("amelie", FRENCH), ("li", CHINESE)):
                enc = stub.EncodeInterest(pb.EncodeInterestRequest(user_id=user, text=text),
                                          timeout=30)
                assert enc.model == tiny.model_id and enc.stored, enc
            for user in ("amelie", "li"):
                rec = stub.Recommend(pb.RecommendRequest(user_id=user, k=5), timeout=30)
                assert len(rec.items) == 5, rec
            state = stub.GetUserState(pb.GetUserStateRequest(user_id="amelie",
                                                             include_vector=True), timeout=30)
            assert state.model == tiny.model_id
            assert len(state.interest_vector) == TINY_HIDDEN
            stored = cz.loads(redis_client.get(DEFAULT_KEYS.user("li").concepts))
            assert {c.model for c in stored} == {tiny.model_id}
            assert {len(c.vector) for c in stored} == {TINY_HIDDEN}
    finally:
        proc.stop()


def test_b_switching_encoders_on_one_redis_never_mixes_vectors(
        redis_client: redis.Redis, start, encoder: TextEncoder,  # noqa: ANN001
        tiny: TextEncoder) -> None:
    assert encoder.dim != tiny.dim
    first = start(encoder)
    with grpc.insecure_channel(first.target) as channel:
        stub = _stub(channel)
        stub.UpsertItems(iter([pb.UpsertItemsRequest(items=catalog_items())]), timeout=60)
        _seed_users(stub)
    minilm_vectors = _check_served_by(first, encoder, redis_client)
    first.stop(grace_s=0.5)

    second = start(tiny)  # same Redis, another encoder of another dimension
    tiny_vectors = _check_served_by(second, tiny, redis_client)
    # The next event folds into the vector recomputed from the window (not one restarted from
    # nothing), and the record is written in this model's name.
    new = ("a4", "4", pb.EVENT_TYPE_LIKE, None, 4_000)
    with grpc.insecure_channel(second.target) as channel:
        stub = _stub(channel)
        stub.IngestEvents(pb.EventBatch(events=[event(new[0], "ana", new[1], kind=new[2],
                                                      ts=new[4])]), timeout=30)
        state = stub.GetUserState(pb.GetUserStateRequest(user_id="ana", include_vector=True))
    record = UserRecord.decode(redis_client.get(DEFAULT_KEYS.user("ana").record))
    assert record.model == tiny.model_id and record.vector is not None
    np.testing.assert_allclose(
        state.interest_vector,
        _expected_interest("ana", tiny_vectors, second.engine.settings.half_life_s, (new,)),
        atol=1e-5)
    HISTORIES["ana"].append(new)  # the window now holds it, for the checks below
    try:
        # A merge writes the user's concepts back in this model's space.
        with grpc.insecure_channel(second.target) as channel:
            _stub(channel).EncodeInterest(pb.EncodeInterestRequest(
                user_id="cy", text="I also like westerns", mode=pb.ENCODE_MODE_MERGE))
        stored = cz.loads(redis_client.get(DEFAULT_KEYS.user("cy").concepts))
        assert len(stored) >= 2
        assert {(c.model, len(c.vector), len(c.ground_vector)) for c in stored} == \
            {(tiny.model_id, tiny.dim, tiny.dim)}
        second.stop(grace_s=0.5)

        third = start(encoder)  # and back
        back = _check_served_by(third, encoder, redis_client)
        for item_id, vec in back.items():  # the same model gives the same vectors again
            np.testing.assert_allclose(vec, minilm_vectors[item_id], atol=1e-5)
    finally:
        HISTORIES["ana"].remove(new)


def test_the_shipped_concept_head_is_refused_on_another_encoder(
        redis_client: redis.Redis, redis_server: str, tiny: TextEncoder) -> None:
    """The head reads the default encoder's token states: on another encoder the start fails
    and names the fixes (docs/models.md), rather than extracting from the wrong states."""
    with pytest.raises(FailedPrecondition, match="train-concepts --model-dir DIR") as exc:
        create_server(settings_for(redis_server), encoder=tiny)
    assert "--concept-extractor rules" in str(exc.value)


def test_replicas_with_different_encoders_keep_their_own_vectors(
        redis_client: redis.Redis, start, encoder: TextEncoder,  # noqa: ANN001
        tiny: TextEncoder) -> None:
    """Two replicas of one tenant running different encoders (a misconfiguration, or a rolling
    change of encoder): each re-embeds the other's catalog writes in memory only, so neither
    mixes vectors, and they do not rewrite each other's items back and forth for ever."""
    a, b = start(encoder), start(tiny)
    with grpc.insecure_channel(a.target) as channel:
        _stub(channel).UpsertItems(iter([pb.UpsertItemsRequest(items=catalog_items())]),
                                   timeout=60)
    deadline = time.monotonic() + 30
    while len(b.engine.index) < len(MOVIES) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(b.engine.index) == len(MOVIES)
    for item_id, _, _ in MOVIES:
        assert len(b.engine.index.vector(item_id)) == tiny.dim
        assert len(a.engine.index.vector(item_id)) == encoder.dim
    stream = DEFAULT_KEYS.catalog_changes
    time.sleep(3)  # several follower polls: a ping-pong of write-backs would show by now
    length = redis_client.xlen(stream)
    time.sleep(2)
    assert redis_client.xlen(stream) == length == 1  # only A's upsert
    assert {m for m, _ in _stored_items(redis_client).values()} == {encoder.model_id}
    with grpc.insecure_channel(b.target) as channel:
        stub = _stub(channel)
        assert len(stub.Recommend(pb.RecommendRequest(user_id="x", k=5)).items) == 5
