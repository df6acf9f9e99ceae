"""A live interest-model switch, its pure parts: the index swaps model and item matrix together,
and a published blob is loaded only when it is a safe checkpoint of the right encoder."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from interest_server.engine.model_follower import ModelRefused, load_checkpoint_bytes
from interest_server.model.sequence_model import SeqConfig, SeqRecNet, save_checkpoint
from interest_server.recommend.item_index import CatalogItem, ItemIndex

TEXT_DIM = 8
TEXT_MODEL = "test-encoder:000000000000"


def _items(ids: list[str], value: float = 1.0) -> list[CatalogItem]:
    return [CatalogItem(i, f"item {i}", {}, np.full(TEXT_DIM, value, dtype=np.float32), "enc")
            for i in ids]


def _embed(level: float):  # noqa: ANN202 - a fake model's item matrix: every row = level
    def embed(ids: list[str], vectors: np.ndarray) -> np.ndarray:
        return np.full((len(ids), 3), level, dtype=np.float32)
    return embed


def test_a_view_holds_one_model_and_its_matrix_across_a_switch() -> None:
    index = ItemIndex(TEXT_DIM, behaviour_embed=_embed(1.0), behaviour_dim=3,
                      behaviour_model="m1", background=False)
    index.upsert(_items(["a", "b", "c"]))
    index.delete(["b"])
    before = index.view()
    index.set_behaviour(_embed(2.0), 3, "m2")
    after = index.view()
    # The old view keeps the old pair (in-flight requests finish on it), the new one is whole.
    assert before.behaviour_model == "m1" and np.all(before.behaviour_vectors == 1.0)
    assert after.behaviour_model == "m2" and index.behaviour_model == "m2"
    alive = after.alive
    assert np.all(after.behaviour_vectors[alive] == 2.0)
    # Back to text vectors (no matrix): the view says so, with its model.
    index.set_behaviour(None, 0, "decayed")
    plain = index.view()
    assert plain.behaviour_vectors is None and plain.behaviour_model == "decayed"
    index.upsert(_items(["d"]))
    assert index.view().behaviour_vectors is None


def test_rows_written_while_the_new_matrix_is_computed_get_the_new_model() -> None:
    index = ItemIndex(TEXT_DIM, behaviour_embed=_embed(1.0), behaviour_dim=3,
                      behaviour_model="m1", background=False)
    index.upsert(_items(["a", "b"]))
    slow_new = _embed(2.0)
    raced = []

    def racing_embed(ids: list[str], vectors: np.ndarray) -> np.ndarray:
        if not raced:  # the switch's whole-catalog pass: a writer changes the catalog meanwhile
            raced.append(True)
            index.upsert(_items(["b", "new"], value=5.0))  # computed with the old model
        return slow_new(ids, vectors)

    index.set_behaviour(racing_embed, 3, "m2")
    view = index.view()
    assert view.behaviour_model == "m2"
    assert view.n == 3 and np.all(view.behaviour_vectors == 2.0), view.behaviour_vectors
    # A write that computed its rows with the old model but lands after the swap is redone.
    swapped = []

    def old_model_then_switch(ids: list[str], vectors: np.ndarray) -> np.ndarray:
        if ids == ["c"] and not swapped:  # the switch lands while the upsert of c computes
            swapped.append(True)
            index.set_behaviour(_embed(3.0), 3, "m3")
        return _embed(1.0)(ids, vectors)

    index.set_behaviour(old_model_then_switch, 3, "m1")
    index.upsert(_items(["c"]))
    view = index.view()
    assert view.behaviour_model == "m3" and view.n == 4
    assert np.all(view.behaviour_vectors == 3.0), view.behaviour_vectors


def _checkpoint(path: Path, seed: int, text_model: str = TEXT_MODEL) -> str:
    torch.manual_seed(seed)
    net = SeqRecNet(SeqConfig(text_dim=TEXT_DIM, n_items=3, dim=4, n_layers=1, n_heads=2,
                              max_len=4, dropout=0.0, emb_dropout=0.0, memory_k=0))
    return save_checkpoint(path, net, ["a", "b", "c"], text_model)


def _vector(item_id: str) -> np.ndarray:
    return np.ones(TEXT_DIM, dtype=np.float32)


class _Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # noqa: ANN204 - what an attacker would store in Redis
        return (os.system, (f"touch {self.marker}",))


def test_only_a_safe_checkpoint_of_the_encoder_and_version_is_loaded(tmp_path: Path) -> None:
    version = _checkpoint(tmp_path / "m.pt", 0)
    blob = (tmp_path / "m.pt").read_bytes()
    model = load_checkpoint_bytes(blob, version, TEXT_MODEL, _vector, TEXT_DIM)
    assert model.version == version and model.dim == 5  # dim + the folded bias column

    marker = tmp_path / "pwned"
    for evil in (pickle.dumps(_Payload(marker)), b"not a checkpoint", b""):
        with pytest.raises(ModelRefused) as refused:
            load_checkpoint_bytes(evil, version, TEXT_MODEL, _vector, TEXT_DIM)
        assert refused.value.reason == "load"
    assert not marker.exists(), "the pickle's payload ran"
    # torch.save of the same payload: the weights-only unpickler refuses it too.
    torch.save({"format": "x", "evil": _Payload(marker)}, tmp_path / "evil.pt")
    with pytest.raises(ModelRefused, match="not a loadable"):
        load_checkpoint_bytes((tmp_path / "evil.pt").read_bytes(), version, TEXT_MODEL,
                              _vector, TEXT_DIM)
    assert not marker.exists(), "the pickle's payload ran"

    with pytest.raises(ModelRefused) as refused:
        load_checkpoint_bytes(blob, "seq-000000000000", TEXT_MODEL, _vector, TEXT_DIM)
    assert refused.value.reason == "version"
    other = _checkpoint(tmp_path / "o.pt", 0, text_model="another-encoder:1")
    with pytest.raises(ModelRefused) as refused:
        load_checkpoint_bytes((tmp_path / "o.pt").read_bytes(), other, TEXT_MODEL, _vector,
                              TEXT_DIM)
    assert refused.value.reason == "encoder"
