"""Sequence interest model: learns a synthetic pattern, round-trips checkpoints, serves in numpy,
and scales to large catalogs (capped memory, sampled softmax)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from interest_server.model.sequence_model import (
    CHECKPOINT_FORMAT_VERSION,
    SeqConfig,
    SeqRecNet,
    SequenceInterestModel,
    model_version,
    param_count,
    save_checkpoint,
)
from interest_server.offline.batching import TrainTensors
from interest_server.offline.model_eval import fast_evaluate, offline_evaluate
from interest_server.offline.prior import cooccurrence_prior
from interest_server.offline.sequences import SplitData
from interest_server.offline.training import TrainConfig, train_on_split

N_ITEMS = 30
TEXT_DIM = 16
TEXT_MODEL = "test-encoder:000000000000"


def _synthetic(n_users: int = 60, seed: int = 0) -> SplitData:
    """Users walk the items in a ring (i -> i+1); each history's next two steps are the targets."""
    rng = np.random.default_rng(seed)
    item_ids = [f"m{i}" for i in range(N_ITEMS)]
    text = rng.normal(size=(N_ITEMS, TEXT_DIM)).astype(np.float32)
    text /= np.linalg.norm(text, axis=1, keepdims=True)
    users, train, valid, test = [], {}, {}, {}
    for u in range(n_users):
        start, length = int(rng.integers(N_ITEMS)), int(rng.integers(6, 14))
        walk = [item_ids[(start + step) % N_ITEMS] for step in range(length + 2)]
        user = f"u{u}"
        users.append(user)
        train[user], valid[user], test[user] = walk[:-2], walk[-2], walk[-1]
    return SplitData(item_ids, text, TEXT_MODEL, users, train, valid, test)


def _tiny_config(**overrides: object) -> SeqConfig:
    base = {"text_dim": TEXT_DIM, "n_items": N_ITEMS, "dim": 16, "n_layers": 1, "n_heads": 2,
            "max_len": 8, "dropout": 0.1, "emb_dropout": 0.1, "tied": False, "memory_k": 0,
            "memory_symmetric": False}
    return SeqConfig(**{**base, **overrides})


def _model(tmp_path: Path, memory: bool = False, seed: int = 0) -> SequenceInterestModel:
    torch.manual_seed(seed)
    net = SeqRecNet(_tiny_config(**({"memory_k": 3, "memory_symmetric": True} if memory else {})))
    if net.memory is not None:
        with torch.no_grad():  # a trained memory is not zero; random values test the plumbing
            net.memory[1:, 1:] = torch.randn(N_ITEMS, N_ITEMS)
            net.memory_prior[1:, 1:] = torch.rand(N_ITEMS, N_ITEMS)
            net.prior_scale.fill_(0.5)
    name = "m.pt"
    save_checkpoint(tmp_path / name, net, [f"m{i}" for i in range(N_ITEMS)], TEXT_MODEL)
    return SequenceInterestModel.load(tmp_path / name)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, SplitData]:
    split = _synthetic()
    out = tmp_path_factory.mktemp("seq") / "model.pt"
    report = train_on_split(
        split,
        out,
        _tiny_config(memory_k=2),
        TrainConfig(epochs=30, batch_size=16, lr=5e-3, eval_every=5, patience=100, threads=1,
                    time_limit_s=60.0),
        progress=False,
    )
    return report, split


def test_training_learns_the_pattern_and_beats_random(trained: tuple[dict, SplitData]) -> None:
    report, split = trained
    model = SequenceInterestModel.load(report["checkpoint"])
    metrics = offline_evaluate(model, split)
    # Random ranking of ~20 remaining items puts the target in the top 10 about half the time.
    assert metrics["test"]["recall@10"] > 0.9
    assert metrics["test"]["ndcg@10"] > 0.6
    assert Path(report["plot"]).is_file()
    assert model.text_model_id == TEXT_MODEL
    assert model.version == report["version"]
    assert model.metadata["best_epoch"] == report["best_epoch"]


def test_batched_evaluation_matches_the_serving_api(trained: tuple[dict, SplitData]) -> None:
    report, split = trained
    model = SequenceInterestModel.load(report["checkpoint"])
    served = offline_evaluate(model, split)
    tensors = TrainTensors(split, model.max_len)
    for name in ("valid", "test"):
        fast = fast_evaluate(model.net, tensors, split, name)
        assert fast == pytest.approx(served[name], abs=1e-9)


@pytest.mark.parametrize("memory", [False, True])
def test_checkpoint_round_trip_gives_identical_vectors(tmp_path: Path, memory: bool) -> None:
    torch.manual_seed(1)
    net = SeqRecNet(_tiny_config(memory_k=3 if memory else 0))
    ids = [f"m{i}" for i in range(N_ITEMS)]
    before = SequenceInterestModel(net, ids, TEXT_MODEL, "unsaved")
    save_checkpoint(tmp_path / "a.pt", net, ids, TEXT_MODEL, {"note": "x"})
    after = SequenceInterestModel.load(tmp_path / "a.pt")
    text = np.random.default_rng(2).normal(size=(5, TEXT_DIM)).astype(np.float32)
    history = ["m3", "m4", "unknown", "m5", "m6"]
    np.testing.assert_array_equal(before.user_vector(history, text),
                                  after.user_vector(history, text))
    np.testing.assert_array_equal(before.item_matrix(history, text),
                                  after.item_matrix(history, text))
    # Plain tensors and strings only: loadable without unpickling code.
    raw = torch.load(tmp_path / "a.pt", weights_only=True)
    assert raw["item_ids"] == ids and raw["metadata"] == {"note": "x"}


@pytest.mark.parametrize("memory", [False, True])
def test_scores_are_a_dot_product_with_the_bias_folded_in(tmp_path: Path, memory: bool) -> None:
    model = _model(tmp_path, memory)
    rng = np.random.default_rng(3)
    text = rng.normal(size=(N_ITEMS, TEXT_DIM)).astype(np.float32)
    ids = [f"m{i}" for i in range(N_ITEMS)]
    vec = model.user_vector(ids[:4], text[:4])
    items = model.item_matrix(ids, text)
    assert vec is not None and vec.dtype == np.float32 and vec.shape == (model.dim,)
    assert items.dtype == np.float32 and items.shape == (N_ITEMS, model.dim)
    assert vec[model.net.cfg.dim] == 1.0  # multiplies the bias column
    net = model.net
    with torch.inference_mode():
        hidden = net.encode(
            torch.tensor([[1, 2, 3, 4]]), torch.from_numpy(text[:4])[None],
            torch.ones(1, 4, dtype=torch.bool),
        )[0, -1]
        out = net.output_items(torch.arange(1, N_ITEMS + 1), torch.from_numpy(text))
        expected = out[:, :-1] @ hidden + out[:, -1]
        if memory:  # the last 3 events, newest weighted 1, then decay, decay^2
            m = net.memory_matrix()
            decay = net.cfg.memory_decay
            expected += m[4, 1:] + decay * m[3, 1:] + decay**2 * m[2, 1:]
    assert model.dim == net.cfg.dim + 1 + (N_ITEMS if memory else 0)
    np.testing.assert_allclose(items @ vec, expected.numpy(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("memory", [False, True])
def test_user_vector_reads_at_most_max_len_events(tmp_path: Path, memory: bool) -> None:
    model = _model(tmp_path, memory)
    rng = np.random.default_rng(4)
    n = model.max_len + 5
    ids = [f"m{i % N_ITEMS}" for i in range(n)]
    text = rng.normal(size=(n, TEXT_DIM)).astype(np.float32)
    full = model.user_vector(ids, text)
    tail = model.user_vector(ids[-model.max_len :], text[-model.max_len :])
    np.testing.assert_allclose(full, tail, rtol=1e-6, atol=1e-6)
    # Changing an event older than the window changes nothing; a recent one does.
    older = ["m29", *ids[1:]]
    np.testing.assert_allclose(model.user_vector(older, text), full, rtol=1e-6, atol=1e-6)
    newer = [*ids[:-1], "m29"]
    assert not np.allclose(model.user_vector(newer, text), full)


@pytest.mark.parametrize("memory", [False, True])
def test_unknown_item_ids_use_the_text_part_only(tmp_path: Path, memory: bool) -> None:
    model = _model(tmp_path, memory)
    net = model.net
    with torch.no_grad():
        net.out_id.weight[1:] += 1.0  # make the learned id part impossible to miss
        net.bias_id.weight[1:] += 1.0
    text = np.random.default_rng(5).normal(size=(2, TEXT_DIM)).astype(np.float32)
    known, unknown = model.item_matrix(["m0", "never-seen"], text[[0, 0]])
    assert not np.allclose(known, unknown)
    with torch.inference_mode():
        t = torch.from_numpy(text[0])
        expected = torch.cat([net.out_text(t), net.bias_text(t)]).numpy()
    np.testing.assert_allclose(unknown[: len(expected)], expected, rtol=1e-6, atol=1e-6)
    # No learned item-item memory for an item the checkpoint never saw.
    assert not unknown[len(expected) :].any()
    # Unknown ids are placeable from text alone, in histories too.
    assert model.user_vector(["never-seen", "also-new"], text) is not None


def test_version_follows_the_weights(tmp_path: Path) -> None:
    torch.manual_seed(6)
    net = SeqRecNet(_tiny_config())
    ids = [f"m{i}" for i in range(N_ITEMS)]
    v1 = save_checkpoint(tmp_path / "a.pt", net, ids, TEXT_MODEL)
    v1_again = save_checkpoint(tmp_path / "b.pt", net, ids, TEXT_MODEL)
    with torch.no_grad():
        net.bias_text.bias += 0.5
    v2 = save_checkpoint(tmp_path / "c.pt", net, ids, TEXT_MODEL)
    assert v1.startswith("seq-") and len(v1) == len("seq-") + 12
    assert v1 == v1_again == SequenceInterestModel.load(tmp_path / "a.pt").version
    assert v2 != v1
    # The version names the weights, not the file: a copy or new metadata keeps it.
    copy = tmp_path / "copied.pt"
    copy.write_bytes((tmp_path / "c.pt").read_bytes())
    assert SequenceInterestModel.load(copy).version == v2
    assert save_checkpoint(tmp_path / "d.pt", net, ids, TEXT_MODEL, {"epochs": 3}) == v2


def test_empty_history_gives_none_and_bad_shapes_are_refused(tmp_path: Path) -> None:
    model = _model(tmp_path)
    assert model.user_vector([], np.zeros((0, TEXT_DIM), dtype=np.float32)) is None
    with pytest.raises(ValueError, match="shape"):
        model.user_vector(["m1"], np.zeros((2, TEXT_DIM), dtype=np.float32))
    with pytest.raises(ValueError, match="shape"):
        model.item_matrix(["m1"], np.zeros((1, TEXT_DIM + 1), dtype=np.float32))


def test_cooccurrence_prior_counts_nearby_pairs_both_ways() -> None:
    prior = cooccurrence_prior([[1, 2, 3], [2, 3]], n_vocab=5, window=2, decay=0.5,
                               pop_alpha=0.0)
    # Pair weights: (1,2) 1, (2,3) 1 + 1, (1,3) 0.5, each counted in both directions.
    counts = torch.tensor([[0, 1, 0.5], [1, 0, 2], [0.5, 2, 0]])
    expected = counts / (counts.sum(1, keepdim=True) + 1.0)
    torch.testing.assert_close(prior[1:4, 1:4], expected)
    assert not prior[0].any() and not prior[:, 0].any() and not prior[4].any()


def _capped_model(tmp_path: Path, slot_items: list[int]) -> SequenceInterestModel:
    """A model over N_ITEMS items whose memory covers only `slot_items` (vocabulary indices)."""
    torch.manual_seed(7)
    net = SeqRecNet(_tiny_config(memory_k=3, memory_symmetric=True,
                                 memory_items=len(slot_items)))
    net.set_memory_items(torch.tensor(slot_items))
    with torch.no_grad():
        c = len(slot_items)
        net.memory[1:, 1:] = torch.randn(c, c)
        net.memory_prior[1:, 1:] = torch.rand(c, c)
        net.prior_scale.fill_(0.5)
        # Slot 0 stands for "no slot": whatever it holds must never be read.
        net.memory[0, :] = net.memory[:, 0] = 3.0
    save_checkpoint(tmp_path / "capped.pt", net, [f"m{i}" for i in range(N_ITEMS)], TEXT_MODEL)
    return SequenceInterestModel.load(tmp_path / "capped.pt")


def test_a_capped_memory_bounds_parameters_and_vectors() -> None:
    n_items, cap = 50_000, 64
    net = SeqRecNet(_tiny_config(n_items=n_items, memory_k=3, memory_items=cap))
    assert net.capped and net.memory_size == cap
    assert net.score_dim == net.cfg.dim + 1 + cap
    assert net.memory.shape == net.memory_prior.shape == (cap + 1, cap + 1)
    # Linear in the catalog: a few vectors per item (input, output, biases) plus the memory.
    per_item = 2 * net.cfg.dim + 1
    fixed = sum(p.numel() for name, p in net.named_parameters()
                if not name.endswith("_id.weight") and name != "memory")
    assert param_count(net) == (n_items + 1) * per_item + (cap + 1) ** 2 + fixed
    # Every item fits under the default cap: the memory is the full (items x items) one.
    small = SeqRecNet(_tiny_config(memory_k=3))
    assert not small.capped and small.score_dim == small.cfg.dim + 1 + N_ITEMS
    assert small.memory.shape == (N_ITEMS + 1, N_ITEMS + 1)


def test_a_capped_memory_scores_as_the_full_memory_it_embeds(tmp_path: Path) -> None:
    slot_items = [5, 2, 17, 9, 30, 11]  # vocabulary indices, most frequent first
    capped = _capped_model(tmp_path, slot_items)
    assert capped.dim == capped.net.cfg.dim + 1 + len(slot_items)
    # The same weights in an uncapped network, whose memory holds the capped one's entries at
    # the slot items' rows and columns and zero elsewhere, must score every item the same.
    full_net = SeqRecNet(_tiny_config(memory_k=3, memory_symmetric=True))
    state = {k: v for k, v in capped.net.state_dict().items() if k != "memory_slots"}
    where = torch.tensor([0, *slot_items])
    for name in ("memory", "memory_prior"):
        embedded = torch.zeros(N_ITEMS + 1, N_ITEMS + 1)
        embedded[where[:, None], where[None, :]] = state[name]
        state[name] = embedded
    full_net.load_state_dict(state)
    full = SequenceInterestModel(full_net, capped.item_ids, TEXT_MODEL, "full")
    rng = np.random.default_rng(8)
    text = rng.normal(size=(N_ITEMS, TEXT_DIM)).astype(np.float32)
    ids = [f"m{i}" for i in range(N_ITEMS)] + ["never-seen"]
    item_text = np.vstack([text, text[:1]])
    for history in (["m4", "m1", "m16"], ["m3", "m8", "m1", "m20", "m4"], ["m0", "m12"]):
        h_text = text[[int(i[1:]) for i in history]]
        np.testing.assert_allclose(
            capped.item_matrix(ids, item_text) @ capped.user_vector(history, h_text),
            full.item_matrix(ids, item_text) @ full.user_vector(history, h_text),
            rtol=1e-5, atol=1e-5)
    # An item without a slot and an unknown item have no memory column.
    items = capped.item_matrix(["m0", "never-seen", "m4"], text[:3])
    width = capped.net.cfg.dim + 1
    assert not items[:2, width:].any() and items[2, width:].any()


def test_items_added_after_training_score_from_their_text(tmp_path: Path) -> None:
    model = _capped_model(tmp_path, [1, 2, 3])
    net = model.net
    text = np.random.default_rng(9).normal(size=(1, TEXT_DIM)).astype(np.float32)
    (added,) = model.item_matrix(["added-later"], text)
    with torch.inference_mode():
        t = torch.from_numpy(text[0])
        expected = torch.cat([net.out_text(t), net.bias_text(t)]).numpy()
    np.testing.assert_allclose(added[: len(expected)], expected, rtol=1e-6, atol=1e-6)
    assert not added[len(expected):].any()
    # A new item's text alone can make it the best match of a history.
    vec = model.user_vector(["m0", "added-later"], np.vstack([text, text]))
    assert vec is not None and np.isfinite(vec).all()


def test_version_1_checkpoints_with_a_full_memory_load_and_serve_the_same(
        tmp_path: Path) -> None:
    # Written as a version-1 writer did: no memory_items in the config, no slot map, and more
    # items than today's default cap, so only the old meaning (memory over every item) fits.
    n_items = SeqConfig.memory_items + 100
    torch.manual_seed(10)
    net = SeqRecNet(_tiny_config(n_items=n_items, memory_k=3, memory_items=n_items, dim=8))
    with torch.no_grad():
        net.memory.normal_()
    ids = [f"m{i}" for i in range(n_items)]
    save_checkpoint(tmp_path / "new.pt", net, ids, TEXT_MODEL)
    raw = torch.load(tmp_path / "new.pt", weights_only=True)
    assert raw["format_version"] == 1 and "memory_slots" not in raw["state_dict"]
    del raw["config"]["memory_items"]
    torch.save(raw, tmp_path / "v1.pt")
    old = SequenceInterestModel.load(tmp_path / "v1.pt")
    assert old.net.memory.shape == (n_items + 1, n_items + 1) and old.dim == 8 + 1 + n_items
    assert old.version == model_version(raw)
    rng = np.random.default_rng(11)
    text = rng.normal(size=(4, TEXT_DIM)).astype(np.float32)
    history = ["m3", f"m{n_items - 1}", "m2500", "m7"]
    fresh = SequenceInterestModel(net, ids, TEXT_MODEL, "unsaved")
    np.testing.assert_array_equal(old.user_vector(history, text),
                                  fresh.user_vector(history, text))
    np.testing.assert_array_equal(old.item_matrix(history, text),
                                  fresh.item_matrix(history, text))


def test_capped_checkpoints_are_format_2_and_round_trip(tmp_path: Path) -> None:
    model = _capped_model(tmp_path, [4, 8, 15, 16])
    raw = torch.load(tmp_path / "capped.pt", weights_only=True)
    assert raw["format_version"] == 2 == CHECKPOINT_FORMAT_VERSION
    assert raw["state_dict"]["memory_slots"][[4, 8, 15, 16]].tolist() == [1, 2, 3, 4]
    assert int((raw["state_dict"]["memory_slots"] != 0).sum()) == 4
    assert model.net.memory_slots[16] == 4


def test_cooccurrence_prior_by_memory_slot_leaves_out_slotless_items() -> None:
    slots = np.array([0, 2, 0, 1, 0])  # item 3 -> slot 1, item 1 -> slot 2, items 2, 4: none
    prior = cooccurrence_prior([[1, 2, 3], [3, 4, 1]], n_vocab=3, window=2, decay=0.5,
                               pop_alpha=0.0, slots=slots)
    # Pairs of slot items only: (1,3) at distance 2 (0.5) and (3,1) at distance 2 (0.5).
    counts = torch.tensor([[0, 1.0], [1.0, 0]])
    torch.testing.assert_close(prior[1:, 1:], counts / (counts.sum(1, keepdim=True) + 1.0))
    assert not prior[0].any() and not prior[:, 0].any()


def _large_catalog(n_items: int, active: int, n_users: int, seed: int = 12) -> SplitData:
    """A catalog of `n_items`; users walk a ring over `active` of them scattered through it."""
    rng = np.random.default_rng(seed)
    item_ids = [f"i{i}" for i in range(n_items)]
    text = rng.normal(size=(n_items, TEXT_DIM)).astype(np.float32)
    text /= np.linalg.norm(text, axis=1, keepdims=True)
    ring = rng.choice(n_items, size=active, replace=False)
    users, train, valid, test = [], {}, {}, {}
    for u in range(n_users):
        start, length = int(rng.integers(active)), int(rng.integers(8, 14))
        walk = [item_ids[ring[(start + step) % active]] for step in range(length + 2)]
        users.append(f"u{u}")
        train[f"u{u}"], valid[f"u{u}"], test[f"u{u}"] = walk[:-2], walk[-2], walk[-1]
    return SplitData(item_ids, text, TEXT_MODEL, users, train, valid, test)


def test_sampled_softmax_trains_a_large_catalog(tmp_path: Path,
                                                caplog: pytest.LogCaptureFixture) -> None:
    split = _large_catalog(n_items=30_000, active=80, n_users=200)
    caplog.set_level(logging.INFO, logger="interest_server.offline.training")
    report = train_on_split(
        split, tmp_path / "large.pt",
        _tiny_config(memory_k=2, memory_items=48),
        TrainConfig(epochs=8, batch_size=32, lr=5e-3, eval_every=4, patience=100, threads=1,
                    time_limit_s=60.0, full_softmax_items=20_000, negatives=256,
                    prior_scales=(0.0, 50.0)),
        progress=False,
    )
    assert "sampled softmax, 256 negatives" in caplog.text
    losses = report["history"]["loss"]
    assert losses[-1] < 0.6 * losses[0], losses
    model = SequenceInterestModel.load(report["checkpoint"])
    assert model.net.capped and model.dim == model.net.cfg.dim + 1 + 48
    # 48 of the 80 walked items hold a memory slot: the most frequent ones.
    assert int((model.net.memory_slots != 0).sum()) == 48
    # Random ranking of 30,000 items almost never puts the target in the top 10.
    assert report["test"]["recall@10"] > 0.5, report["test"]
    served = offline_evaluate(model, split)
    tensors = TrainTensors(split, model.max_len)
    assert fast_evaluate(model.net, tensors, split, "test") == pytest.approx(served["test"],
                                                                             abs=1e-9)


def test_served_check_can_be_limited_to_a_sample_of_users(
        trained: tuple[dict, SplitData]) -> None:
    """At 100k items every served user costs a full catalog scoring: the post-training check
    through the serving API must be able to run on a fixed sample (it ran over every user and
    took longer than the training on 1M events)."""
    report, split = trained
    model = SequenceInterestModel.load(report["checkpoint"])
    calls = 0
    user_vector = model.user_vector

    def counted(*args: object) -> object:
        nonlocal calls
        calls += 1
        return user_vector(*args)

    model.user_vector = counted  # type: ignore[method-assign]
    offline_evaluate(model, split, splits=("test",))
    everyone = calls
    assert everyone > 5
    calls = 0
    first = offline_evaluate(model, split, splits=("test",), max_users=5)
    assert calls <= 5
    assert first == offline_evaluate(model, split, splits=("test",), max_users=5)  # fixed sample
