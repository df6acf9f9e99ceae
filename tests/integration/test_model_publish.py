"""Publishing an interest model live: the CLI stores it in Redis, every replica (here one in this
process and one separate server process) switches within 5 s without a restart, vectors of two
models never mix, a rollback returns both, and a blob that is not a safe checkpoint is refused."""

from __future__ import annotations

import os
import pickle
import time
from collections.abc import Callable
from pathlib import Path

import grpc
import numpy as np
import pytest
import redis
import torch
from interest.v1 import interest_pb2 as pb
from interest.v1 import interest_pb2_grpc
from interest_server import cli
from interest_server.model.sequence_model import (
    SeqConfig,
    SeqRecNet,
    SequenceInterestModel,
    save_checkpoint,
)
from interest_server.ops import metrics
from interest_server.state.keys import KeySpace
from interest_server.state.model_registry import HISTORY_CAP, ModelRegistry, NothingToRollBack
from redis.crc import key_slot

from .conftest import MOVIES, catalog_items, event, start_server_process

SWITCH_S = 5.0
"""A published model serves on every replica within this (docs/models.md)."""
ITEM_IDS = [item_id for item_id, _, _ in MOVIES]


def _checkpoint(path: Path, seed: int, dim: int, text_model: str, text_dim: int) -> str:
    """An untrained tiny sequence model over the test catalog; returns its version."""
    torch.manual_seed(seed)
    net = SeqRecNet(SeqConfig(text_dim=text_dim, n_items=len(ITEM_IDS), dim=dim, n_layers=1,
                              n_heads=2, max_len=8, dropout=0.0, emb_dropout=0.0, memory_k=0))
    return save_checkpoint(path, net, ITEM_IDS, text_model)


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory: pytest.TempPathFactory, encoder) -> dict:  # noqa: ANN001
    root = tmp_path_factory.mktemp("publish")
    out = {}
    for name, seed, dim in (("a", 1, 16), ("b", 2, 12)):
        path = root / f"{name}.pt"
        out[name] = (path, _checkpoint(path, seed, dim, encoder.model_id, encoder.dim))
    path = root / "other.pt"
    out["other"] = (path, _checkpoint(path, 3, 16, "another-encoder:000000000000", encoder.dim))
    return out


def _cli(*args: str) -> int:
    return cli.main(list(args))


def _stub(target: str) -> interest_pb2_grpc.InterestServiceStub:
    return interest_pb2_grpc.InterestServiceStub(grpc.insecure_channel(target))


def _until(pred: Callable[[], bool], within_s: float) -> float | None:
    start = time.monotonic()
    while time.monotonic() - start < within_s:
        if pred():
            return time.monotonic() - start
        time.sleep(0.05)
    return None


def _serving(stub: interest_pb2_grpc.InterestServiceStub, user: str) -> str:
    return stub.Recommend(pb.RecommendRequest(user_id=user, k=5), timeout=10).model


def _expected_vector(checkpoint: Path, ids: list[str], engine) -> np.ndarray:  # noqa: ANN001
    """What the model computes directly from a window of item ids (oldest first)."""
    model = SequenceInterestModel.load(checkpoint)
    texts = np.stack([engine.index.vector(i) for i in ids])
    return model.user_vector(ids, texts)


def test_a_published_model_reaches_another_process_and_rolls_back(
        redis_client: redis.Redis, redis_server: str, make_server, encoder,  # noqa: ANN001
        checkpoints, tmp_path: Path) -> None:
    here = make_server()
    other = start_server_process(redis_server)  # a separate OS process, real gRPC
    try:
        a, b = _stub(here.target), _stub(other.target)
        a.UpsertItems(iter([pb.UpsertItemsRequest(items=catalog_items())]), timeout=60)
        assert _until(lambda: len(b.Recommend(pb.RecommendRequest(user_id="p", k=40),
                                              timeout=10).items) == 30, 10) is not None
        window = ["13", "14", "16"]
        a.IngestEvents(pb.EventBatch(events=[event(f"e{n}", "ann", i, ts=n + 1)
                                             for n, i in enumerate(window)]), timeout=30)
        assert _serving(a, "ann") == _serving(b, "ann") == encoder.model_id
        stored = b.GetUserState(pb.GetUserStateRequest(user_id="ann", include_vector=True))
        assert stored.model == encoder.model_id and len(stored.interest_vector) == encoder.dim

        # (a) Published with the CLI: both replicas serve it within 5 s, no restart.
        path_a, version_a = checkpoints["a"]
        published = time.monotonic()
        assert _cli("publish", str(path_a), "--redis-url", redis_server) == 0
        took = [_until(lambda s=s: _serving(s, "ann") == version_a, SWITCH_S) for s in (a, b)]
        assert None not in took, took
        took = time.monotonic() - published
        print(f"\npublish command started -> both replicas serve the model: {took:.2f} s")
        assert took <= SWITCH_S
        # (b) The stored vector (decayed average, encoder space) is never read under the new
        # model: B recomputes the user's vector from the stored window with model A.
        state = b.GetUserState(pb.GetUserStateRequest(user_id="ann", include_vector=True))
        assert state.model == version_a
        expected = _expected_vector(path_a, window, here.engine)
        assert len(state.interest_vector) == len(expected) != encoder.dim
        np.testing.assert_allclose(state.interest_vector, expected, atol=1e-3)
        # A write after the switch stores model A's vector under model A's name.
        b.IngestEvents(pb.EventBatch(events=[event("e9", "ann", "18", ts=9)]), timeout=30)
        record = here.engine.users.snapshot("ann")
        assert record.model == version_a
        np.testing.assert_allclose(record.accumulator,
                                   _expected_vector(path_a, [*window, "18"], here.engine),
                                   atol=1e-3)

        # A second model (another dimension) replaces it; the history keeps both.
        path_b, version_b = checkpoints["b"]
        assert _cli("publish", str(path_b), "--redis-url", redis_server) == 0
        assert None not in [_until(lambda s=s: _serving(s, "ann") == version_b, SWITCH_S)
                            for s in (a, b)]
        state = a.GetUserState(pb.GetUserStateRequest(user_id="ann", include_vector=True))
        assert state.model == version_b
        np.testing.assert_allclose(
            state.interest_vector,
            _expected_vector(path_b, [*window, "18"], here.engine), atol=1e-3)

        # (d) A blob that is not a safe checkpoint, written straight into Redis, is refused:
        # its code never runs and both replicas keep serving model B.
        marker = tmp_path / "payload-ran"
        failures = metrics.MODEL_LOAD_FAILURES.labels("default", "load")._value.get()
        keys = KeySpace()
        evil = "seq-0123456789ab"
        redis_client.set(keys.model_blob(evil), pickle.dumps(_Payload(marker)))
        redis_client.set(keys.model_current, evil)
        ModelRegistry(redis_client, keys).announce()
        assert _until(lambda: metrics.MODEL_LOAD_FAILURES.labels("default", "load")._value.get()
                      > failures, SWITCH_S) is not None, "the bad blob was not refused here"
        time.sleep(1.5)  # the other process polls too
        assert _serving(a, "ann") == _serving(b, "ann") == version_b
        assert not marker.exists(), "the pickle's payload ran on a replica"
        # A checkpoint of another text model is refused as well (it is a valid checkpoint).
        path_o, version_o = checkpoints["other"]
        redis_client.set(keys.model_blob(version_o), path_o.read_bytes())
        redis_client.set(keys.model_current, version_o)
        ModelRegistry(redis_client, keys).announce()
        assert _until(lambda: metrics.MODEL_LOAD_FAILURES.labels("default", "encoder")
                      ._value.get() > 0, SWITCH_S) is not None
        assert _serving(a, "ann") == _serving(b, "ann") == version_b
        redis_client.set(keys.model_current, version_b)  # undo the test's own tampering

        # (c) Rollback: both replicas return to model A, recomputing the user's vector.
        assert _cli("rollback", "--redis-url", redis_server) == 0
        assert None not in [_until(lambda s=s: _serving(s, "ann") == version_a, SWITCH_S)
                            for s in (a, b)]
        state = b.GetUserState(pb.GetUserStateRequest(user_id="ann", include_vector=True))
        assert state.model == version_a
        np.testing.assert_allclose(
            state.interest_vector,
            _expected_vector(path_a, [*window, "18"], here.engine), atol=1e-3)
        # Nothing before model A: rollback refuses; unpublish returns to the configured model.
        assert _cli("rollback", "--redis-url", redis_server) == 1
        assert _cli("unpublish", "--redis-url", redis_server) == 0
        assert None not in [_until(lambda s=s: _serving(s, "ann") == encoder.model_id,
                                   SWITCH_S) for s in (a, b)]
        info = metrics.REGISTRY.get_sample_value("interest_tenant_model",
                                                 {"tenant": "default",
                                                  "version": encoder.model_id})
        assert info == 1
    finally:
        other.stop()


class _Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # noqa: ANN204 - what someone who can write to Redis might store
        return (os.system, (f"touch {self.marker}",))


def test_a_server_starts_on_the_published_model(redis_client: redis.Redis, redis_server: str,
                                                make_server, checkpoints) -> None:  # noqa: ANN001
    path_a, version_a = checkpoints["a"]
    path_b, version_b = checkpoints["b"]
    assert _cli("publish", str(path_a), "--redis-url", redis_server) == 0
    # The published model takes precedence over --interest-model-path.
    running = make_server(interest_model_path=str(path_b))
    running.engine.upsert_items([(i.item_id, i.text, {}) for i in catalog_items()])
    assert running.engine.model.version == version_a
    stub = _stub(running.target)
    assert _serving(stub, "someone") == version_a
    # Unpublished: the configured checkpoint serves.
    assert _cli("unpublish", "--redis-url", redis_server) == 0
    assert _until(lambda: _serving(stub, "someone") == version_b, SWITCH_S) is not None


def test_the_registry_keeps_a_capped_history_on_one_slot(redis_client: redis.Redis) -> None:
    keys = KeySpace("acme")
    registry = ModelRegistry(redis_client, keys)
    versions = [f"seq-{n:012d}" for n in range(HISTORY_CAP + 2)]
    for v in versions:
        registry.publish(v, v.encode())
    assert registry.current() == versions[-1]
    assert registry.history() == versions[::-1][:HISTORY_CAP]
    # Blobs pushed out of the history are deleted with it.
    assert [registry.blob(v) is not None for v in versions] == \
        [False] * 2 + [True] * HISTORY_CAP
    # Re-publishing a kept version moves it to the front, without a duplicate.
    registry.publish(versions[3], b"again")
    assert registry.history()[:2] == [versions[3], versions[-1]]
    assert len(registry.history()) == HISTORY_CAP
    assert registry.rollback() == (versions[3], versions[-1])
    assert registry.blob(versions[3]) is None
    # Every model key of a tenant hashes to one cluster slot (the scripts take them together).
    names = [keys.model_current, keys.model_history, keys.model_blob(versions[-1])]
    assert all(n.startswith("t:acme:models:{acme}:") for n in names)
    assert len({key_slot(n.encode()) for n in names}) == 1
    withdrawn = registry.unpublish()
    assert withdrawn[0] == versions[-1] and len(withdrawn) == HISTORY_CAP - 1
    assert registry.history() == [] and registry.current() is None
    assert redis_client.keys("t:acme:models:*") == []
    with pytest.raises(NothingToRollBack):
        registry.rollback()
    # Another tenant's models are not touched.
    assert ModelRegistry(redis_client, KeySpace()).history() == []


def test_cli_errors(redis_client: redis.Redis, redis_server: str, tmp_path: Path,
                    checkpoints, capsys) -> None:  # noqa: ANN001
    not_a_checkpoint = tmp_path / "notes.txt"
    not_a_checkpoint.write_text("hello")
    assert _cli("publish", str(not_a_checkpoint), "--redis-url", redis_server) == 1
    assert "is not a sequence-model checkpoint" in capsys.readouterr().err
    assert _cli("publish", str(tmp_path / "missing.pt"), "--redis-url", redis_server) == 1
    assert "cannot read" in capsys.readouterr().err
    assert redis_client.keys("models:*") == []  # nothing was written
    assert _cli("rollback", "--redis-url", redis_server) == 1
    assert "nothing to roll back to" in capsys.readouterr().err
    path_a, version_a = checkpoints["a"]
    assert _cli("publish", str(path_a), "--redis-url", redis_server, "--tenant", "acme") == 0
    assert version_a in capsys.readouterr().out
    assert _cli("rollback", "--redis-url", redis_server, "--tenant", "acme") == 1
    err = capsys.readouterr().err
    assert "nothing to roll back to" in err and version_a in err
    with pytest.raises(SystemExit) as usage:
        _cli("publish", str(path_a))  # no Redis URL: a usage error
    assert usage.value.code == 2


class _Fake:
    """An interest function whose vectors say which function made them."""

    history_length = 0
    standardise_scores = False

    def __init__(self, version: str, level: float, on_update: Callable[[], None] | None = None
                 ) -> None:
        self.version, self.level, self.dim, self.on_update = version, level, 4, on_update

    def update(self, acc, t_ref, history, new):  # noqa: ANN001, ANN201
        if self.on_update is not None:
            self.on_update()  # the switch lands while this write computes
        return np.full(self.dim, self.level, dtype=np.float32), t_ref

    def interest(self, acc):  # noqa: ANN001, ANN201
        return acc


def test_a_write_racing_a_switch_labels_its_vector_with_the_model_that_made_it(
        redis_client: redis.Redis) -> None:
    from interest_server.events import EventRecord, EventType
    from interest_server.state.user_store import UserStore

    new = _Fake("model-b", 2.0)
    store: UserStore | None = None

    def switch() -> None:
        assert store is not None
        store.set_interest(new)

    old = _Fake("model-a", 1.0, on_update=switch)
    store = UserStore(redis_client, old, window_size=10, dedupe_ttl_s=60,
                      popularity_half_life_s=3600)
    vector = lambda _item: np.ones(4, dtype=np.float32)  # noqa: E731
    store.apply_events([EventRecord("e1", "u", "i1", EventType.LIKE, None, 1)], vector)
    snap = store.snapshot("u")
    assert snap.model == "model-a" and np.all(snap.accumulator == 1.0)
    store.apply_events([EventRecord("e2", "u", "i2", EventType.LIKE, None, 2)], vector)
    snap = store.snapshot("u")
    assert snap.model == "model-b" and np.all(snap.accumulator == 2.0)
