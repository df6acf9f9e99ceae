"""Train the sequential interest model on MovieLens-100K and evaluate it offline (leave-one-out)."""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import logging
import math
import random
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from interest_server.model.sequence_model import (
    PAD,
    SeqConfig,
    SeqRecNet,
    SequenceInterestModel,
    param_count,
    save_checkpoint,
    user_vectors_from_hidden,
)
from interest_server.offline.movielens import MovieLens, load_movielens, user_sequences
from interest_server.recommend.item_index import embedding_text

logger = logging.getLogger(__name__)

CUTOFFS = (10, 20)
# Training under 10 minutes on 2 CPU cores, all included: the epoch loop gets 7, leaving room
# for embedding the catalog, the prior search and the final evaluation on a busy machine.
DEFAULT_TIME_LIMIT_S = 420.0


@dataclass
class SplitData:
    """Leave-one-out view of a dataset: training histories (oldest first) and the two targets."""

    item_ids: list[str]  # vocabulary order; vocabulary index = position + 1
    text: np.ndarray  # (n_items, text_dim) text vectors in vocabulary order
    text_model_id: str
    users: list[str]
    train: dict[str, list[str]]
    valid: dict[str, str]
    test: dict[str, str]
    # Event times (seconds) of the training histories; optional, used only for augmentation.
    train_times: dict[str, list[int]] | None = None


def item_text(movie: Any) -> str:
    """Exactly the text the server embeds for a MovieLens item upserted with its attributes."""
    attrs = {k: tuple(v) for k, v in movie.attributes().items()}
    return embedding_text(movie.text(), attrs)


def embed_items(
    texts: Sequence[str], cache_dir: str | Path | None = None
) -> tuple[np.ndarray, str]:
    """Text vectors of the items and the encoder's model id, cached on disk by text + model."""
    from interest_server.model.encoder import TextEncoder, default_model_dir, model_id_for

    model_id = model_id_for(default_model_dir())
    key = hashlib.sha256(("\n".join(texts) + "\0" + model_id).encode()).hexdigest()[:16]
    cache = Path(cache_dir or tempfile.gettempdir()) / f"interest-server-text-{key}.npy"
    if cache.is_file():
        return np.load(cache), model_id
    encoder = TextEncoder()
    vectors = encoder.embed(list(texts))
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.save(cache, vectors)
    return vectors, encoder.model_id


def split_data(
    data: MovieLens, text: np.ndarray | None = None, text_model_id: str = ""
) -> SplitData:
    """Per user: the time-ordered interactions minus the loo targets form the training history.

    The targets come from loo_split.tsv (RecBole's split, float32 timestamps); for the few users
    whose near-simultaneous events sort differently, the history keeps the exact-time order.
    """
    if data.loo is None:
        raise ValueError("the dataset has no loo_split.tsv beside it; leave-one-out needs one")
    item_ids = [m.item_id for m in data.movies]
    known = set(item_ids)
    seqs = user_sequences(data.interactions)
    for events in seqs.values():
        for event in events:
            if event.item_id not in known:  # an interaction on an item the catalog lacks
                known.add(event.item_id)
                item_ids.append(event.item_id)
    if text is None:
        texts = [item_text(m) for m in data.movies] + [""] * (len(item_ids) - len(data.movies))
        text, text_model_id = embed_items(texts)
    users = sorted(data.loo, key=lambda u: (len(u), u))
    train: dict[str, list[str]] = {}
    times: dict[str, list[int]] = {}
    for user in users:
        target = data.loo[user]
        held_out = {target.valid_item_id, target.test_item_id}
        kept = [e for e in seqs.get(user, []) if e.item_id not in held_out]
        train[user] = [e.item_id for e in kept]
        times[user] = [e.timestamp for e in kept]
        if len(train[user]) != target.n_train:
            logger.warning(
                "user %s: %d training items, loo_split says %d",
                user,
                len(train[user]),
                target.n_train,
            )
    return SplitData(
        item_ids=item_ids,
        text=np.asarray(text, dtype=np.float32),
        text_model_id=text_model_id,
        users=users,
        train=train,
        valid={u: data.loo[u].valid_item_id for u in users},
        test={u: data.loo[u].test_item_id for u in users},
        train_times=times,
    )


# -- metrics ----------------------------------------------------------------------------------


def rank_metrics(ranks: np.ndarray) -> dict[str, float]:
    """Recall/NDCG/MRR at the cutoffs from 0-based ranks of one target per user."""
    ranks = np.asarray(ranks, dtype=np.float64)
    out: dict[str, float] = {}
    for k in CUTOFFS:
        hit = ranks < k
        out[f"recall@{k}"] = float(hit.mean())
        out[f"ndcg@{k}"] = float(np.where(hit, 1.0 / np.log2(ranks + 2.0), 0.0).mean())
        out[f"mrr@{k}"] = float(np.where(hit, 1.0 / (ranks + 1.0), 0.0).mean())
    return out


def target_rank(scores: np.ndarray, target: int, excluded: Sequence[int]) -> int:
    """0-based rank of `target` among the items not excluded; a tie counts against it."""
    scores = scores.astype(np.float64, copy=True)
    scores[list(excluded)] = -np.inf
    return int((scores >= scores[target]).sum()) - 1


def offline_evaluate(
    model: SequenceInterestModel,
    data: MovieLens | SplitData,
    *,
    splits: Sequence[str] = ("valid", "test"),
    progress: bool = False,
) -> dict[str, dict[str, float]]:
    """The leave-one-out protocol through the serving API, over every user.

    Full ranking of the catalog by `item_matrix @ user_vector`; excluded are the items consumed
    before the target: the training history for the validation target, and the training history
    plus the validation item (appended to the history, as the server streams it) for the test.
    """
    split = data if isinstance(data, SplitData) else split_data(data)
    if split.text_model_id and model.text_model_id and split.text_model_id != model.text_model_id:
        raise ValueError(
            f"model trained with text model {model.text_model_id}, data embedded with "
            f"{split.text_model_id}"
        )
    col = {item: i for i, item in enumerate(split.item_ids)}
    items = model.item_matrix(split.item_ids, split.text)
    results: dict[str, dict[str, float]] = {}
    for name in splits:
        ranks = []
        for user in tqdm(split.users, desc=f"evaluate {name}", disable=not progress):
            history = list(split.train[user])
            if name == "test":
                history.append(split.valid[user])
            elif name != "valid":
                raise ValueError(f"unknown split {name!r}")
            target = split.valid[user] if name == "valid" else split.test[user]
            vector = model.user_vector(history, split.text[[col[i] for i in history]])
            # An empty history scores by bias only: the protocol still ranks that user.
            if vector is None:
                vector = model.prior_vector()
            ranks.append(target_rank(items @ vector, col[target], [col[i] for i in history]))
        results[name] = rank_metrics(np.array(ranks))
    return results


# -- training ---------------------------------------------------------------------------------


@dataclass
class TrainConfig:
    """Optimisation settings; saved into the checkpoint metadata."""

    epochs: int = 24
    batch_size: int = 32
    lr: float = 2e-3
    weight_decay: float = 0.1
    mask_consumed: bool = True  # softmax only over items not yet consumed, as evaluated
    eval_every: int = 3
    patience: int = 6  # evaluations without a better validation NDCG@10 before stopping
    seed: int = 7
    # One thread: results do not depend on the thread count, and on a shared 2-core machine
    # two OpenMP threads were slower than one (they spin waiting for each other).
    threads: int = 1
    time_limit_s: float = DEFAULT_TIME_LIMIT_S
    schedule: str = "cosine"  # "cosine": one warm-up epoch, then cosine decay to 0; "constant"
    ema: float = 0.98  # >0: evaluate and save an exponential moving average of the weights
    time_shuffle_s: float = 0.0  # >= 0: reorder events within about this many seconds
    # The memory starts at zero and each entry sees few gradients: it gets a larger step.
    memory_lr_mult: float = 2.0
    # Decoupled decay caps an entry that is pushed every step near 1/decay, while pairs seen
    # a few times fade: a soft count, which is what keeps the memory from memorising.
    memory_weight_decay: float = 0.3
    # Co-occurrence prior folded into the memory after training; its weight is picked on the
    # validation targets from these candidates (0 = none). See cooccurrence_prior.
    prior_scales: tuple[float, ...] = (0.0, 25.0, 50.0, 100.0, 200.0, 400.0)
    prior_window: int = 10
    prior_decay: float = 0.9
    prior_pop_alpha: float = 0.25


class _Tensors:
    """Training windows, left-padded, plus what the loss and fast evaluation need."""

    def __init__(self, split: SplitData, max_len: int) -> None:
        self.vocab = {item: i + 1 for i, item in enumerate(split.item_ids)}
        n_vocab = len(split.item_ids) + 1
        text = np.zeros((n_vocab, split.text.shape[1]), dtype=np.float32)
        text[1:] = split.text
        self.text = torch.from_numpy(text)
        self.n_users = len(split.users)
        # first[u, i]: index of item i in user u's training history (large if never consumed),
        # so "consumed up to position g" is a single comparison per item.
        self.first = torch.full((self.n_users, n_vocab), 1 << 30, dtype=torch.int32)
        windows: list[tuple[int, int, list[int]]] = []
        self.histories: list[list[int]] = []
        self.user_times: list[list[float]] = []
        for u, user in enumerate(split.users):
            seq = [self.vocab[i] for i in split.train[user]]
            stamps = split.train_times.get(user) if split.train_times else None
            # Without times, positions stand in for them (ties never occur then).
            base = stamps[0] if stamps else 0
            self.user_times.append(
                [float(t - base) for t in stamps] if stamps else [float(g) for g in range(len(seq))]
            )
            self.histories.append(seq)
            for g in range(len(seq) - 1, -1, -1):
                self.first[u, seq[g]] = g
            # Windows of at most max_len inputs that together predict every item but the first.
            end = len(seq)
            while end >= 2:
                start = max(0, end - max_len - 1)
                windows.append((u, start, seq[start:end]))
                end = start + 1
        w = len(windows)
        # Whole windows (inputs and the last target), left-padded to max_len + 1.
        self.seq = torch.zeros(w, max_len + 1, dtype=torch.long)
        # float64: seconds since the user's first event exceed float32's integer precision.
        self.times = torch.full((w, max_len + 1), -1.0, dtype=torch.float64)
        self.start = torch.zeros(w, dtype=torch.long)
        self.user = torch.zeros(w, dtype=torch.long)
        self.lengths = torch.zeros(w, dtype=torch.long)  # inputs (= targets) per window
        for row, (u, start, window) in enumerate(windows):
            self.seq[row, max_len + 1 - len(window) :] = torch.tensor(window)
            self.times[row, max_len + 1 - len(window) :] = torch.tensor(
                self.user_times[u][start : start + len(window)], dtype=torch.float64
            )
            self.start[row] = start
            self.user[row] = u
            self.lengths[row] = len(window) - 1
        self.n_targets = int(self.lengths.sum())

    def batch(
        self, rows: torch.Tensor, gen: torch.Generator, time_shuffle_s: float = -1.0
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The (b, width + 1) windows, the global index of each input slot (b, width), and per
        row the consumption key of every item: an item is consumed at input g when key <= g.

        Half of MovieLens-100K's consecutive ratings share a timestamp second, and their order
        is only file order, so reordering them is augmentation, not noise. `time_shuffle_s`
        >= 0 sorts each window by time + U(0, max(s, 0.5)) seconds: 0 swaps exact ties only.
        """
        width = int(self.lengths[rows].max())
        seq = self.seq[rows, -(width + 1) :]
        real = seq != PAD
        if time_shuffle_s >= 0:
            key64 = self.times[rows, -(width + 1) :].clone()
            noise = torch.rand(seq.shape, generator=gen, dtype=torch.float64)
            key64 += noise * max(time_shuffle_s, 0.5)
            key64[~real] = -1e18  # padding stays on the left
            seq = seq.gather(1, key64.argsort(dim=1, stable=True))
        lengths = self.lengths[rows]
        # Slot j of a row holds window position j - (width - m); global index = start + that.
        offset = self.start[rows] - (width - lengths)
        slot = torch.arange(width + 1)
        global_idx = offset[:, None] + slot[None, :]
        keys = self.first[self.user[rows]].clone()
        # Items of the window are consumed where they now sit (after any shuffle).
        keys.scatter_(1, seq, global_idx.to(keys.dtype))
        return seq, global_idx[:, :-1], keys


def cooccurrence_prior(
    histories: Sequence[Sequence[int]],
    n_vocab: int,
    window: int = 10,
    decay: float = 0.9,
    pop_alpha: float = 0.25,
) -> torch.Tensor:
    """(n_vocab, n_vocab) how strongly item b accompanies item a in the training sequences.

    Every pair within `window` positions counts decay**(distance - 1), in both directions
    (ratings in a burst have arbitrary order). Rows are divided by the row total^(1 - alpha)
    and columns by the column total^alpha: mostly P(b | a), with popular b damped a little.
    """
    index: list[np.ndarray] = []
    weight: list[np.ndarray] = []
    for history in histories:
        seq = np.asarray(history, dtype=np.int64)
        for dist in range(1, min(window, len(seq) - 1) + 1):
            a, b = seq[:-dist], seq[dist:]
            w = np.full(len(a), decay ** (dist - 1))
            index += [a * n_vocab + b, b * n_vocab + a]
            weight += [w, w]
    if not index:
        return torch.zeros(n_vocab, n_vocab)
    counts = np.bincount(
        np.concatenate(index), np.concatenate(weight), minlength=n_vocab * n_vocab
    ).reshape(n_vocab, n_vocab)
    rows = counts.sum(axis=1, keepdims=True) + 1.0
    cols = counts.sum(axis=0, keepdims=True) + 1.0
    prior = counts / (rows ** (1.0 - pop_alpha) * cols**pop_alpha)
    prior[PAD, :] = 0.0
    prior[:, PAD] = 0.0
    return torch.from_numpy(prior.astype(np.float32))


def _length_buckets(
    lengths: torch.Tensor, batch_size: int, gen: torch.Generator
) -> list[torch.Tensor]:
    """Random batches of similar length: padding is computed for nothing, and histories here
    range from 18 to 200+ items, so sorting by a jittered length halves the work per epoch."""
    jitter = torch.rand(len(lengths), generator=gen) * 40.0
    order = torch.argsort(lengths.float() + jitter)
    batches = list(order.split(batch_size))
    return [batches[i] for i in torch.randperm(len(batches), generator=gen).tolist()]


def _fast_evaluate(
    net: SeqRecNet, tensors: _Tensors, split: SplitData, name: str
) -> dict[str, float]:
    """Same protocol as `offline_evaluate`, batched over users (used for early stopping)."""
    net.eval()
    max_len = net.cfg.max_len
    ranks: list[int] = []
    with torch.inference_mode():
        items = net.item_vectors(torch.arange(len(tensors.text)), tensors.text)
        for start in range(0, len(split.users), 256):
            users = split.users[start : start + 256]
            hists = []
            for u, user in enumerate(users, start=start):
                hist = list(tensors.histories[u])
                if name == "test":
                    hist.append(tensors.vocab[split.valid[user]])
                hists.append(hist)
            width = max(1, min(max_len, max(len(h) for h in hists)))
            idx = torch.zeros(len(users), width, dtype=torch.long)
            for r, hist in enumerate(hists):
                tail = hist[-width:]
                if tail:
                    idx[r, width - len(tail) :] = torch.tensor(tail)
            valid = idx != PAD
            hidden = net.encode(idx, tensors.text[idx], valid)[:, -1]
            recency = None
            if net.memory is not None:
                last = torch.full((len(users),), width - 1, dtype=torch.long)
                recency = net.recency(idx, torch.arange(len(users)), last).to_dense()
            scores = net.user_vectors(hidden, recency) @ items.T
            for r in range(len(users)):
                if not hists[r]:
                    scores[r] = items[:, net.cfg.dim]  # bias only
            scores[:, PAD] = -torch.inf
            for r, user in enumerate(users):
                target = tensors.vocab[(split.valid if name == "valid" else split.test)[user]]
                row = scores[r].clone()
                row[hists[r]] = -torch.inf
                ranks.append(int((row >= row[target]).sum()) - 1)
    return rank_metrics(np.array(ranks))


def train_on_split(
    split: SplitData,
    out_path: str | Path,
    model_cfg: SeqConfig,
    train_cfg: TrainConfig,
    *,
    progress: bool = True,
    on_eval: Callable[[int, dict[str, float]], None] | None = None,
) -> dict[str, Any]:
    """Train, keep the weights of the best validation NDCG@10, save them, and report."""
    random.seed(train_cfg.seed)
    np.random.seed(train_cfg.seed)
    torch.manual_seed(train_cfg.seed)
    if train_cfg.threads > 0:
        torch.set_num_threads(train_cfg.threads)
    t0 = time.monotonic()
    model_cfg = SeqConfig(
        **{**asdict(model_cfg), "n_items": len(split.item_ids), "text_dim": split.text.shape[1]}
    )
    tensors = _Tensors(split, model_cfg.max_len)
    net = SeqRecNet(model_cfg)
    # Norms, biases and the bias embedding are not decayed (the usual AdamW grouping).
    decay, no_decay = [], []
    for name, p in net.named_parameters():
        if name == "memory":
            continue
        (no_decay if p.ndim < 2 or "norm" in name or "bias" in name else decay).append(p)
    groups = [
        {"params": decay, "weight_decay": train_cfg.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    if net.memory is not None:
        groups.append({"params": [net.memory], "weight_decay": train_cfg.memory_weight_decay,
                       "lr": train_cfg.lr * train_cfg.memory_lr_mult})
    opt = torch.optim.AdamW(groups, lr=train_cfg.lr)
    logger.info(
        "training %d parameters on %d windows, %d targets",
        param_count(net),
        len(tensors.user),
        tensors.n_targets,
    )
    steps_per_epoch = math.ceil(len(tensors.user) / train_cfg.batch_size)
    total_steps = steps_per_epoch * train_cfg.epochs

    def lr_factor(step: int) -> float:
        if train_cfg.schedule != "cosine":
            return 1.0
        if step < steps_per_epoch:
            return (step + 1) / steps_per_epoch
        progress = (step - steps_per_epoch) / max(1, total_steps - steps_per_epoch)
        # On a machine too slow to finish every epoch within the time limit, the second half of
        # the budget drives the schedule instead, so a run cut short still ends annealed. A run
        # on time never reaches the clock's pace, so its result does not depend on timing.
        half = 0.5 * train_cfg.time_limit_s
        progress = max(progress, (time.monotonic() - t0 - half) / half)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_factor)
    # Weight averaging smooths the epoch-to-epoch swings a 943-user validation set cannot resolve.
    ema_net = copy.deepcopy(net) if train_cfg.ema > 0 else net
    gen = torch.Generator().manual_seed(train_cfg.seed)
    all_idx = torch.arange(len(tensors.text))
    history: dict[str, list[float]] = {
        "epoch": [], "loss": [], "eval_epoch": [], "valid_ndcg@10": []
    }
    best: dict[str, Any] = {"ndcg": -1.0, "epoch": 0, "state": None, "valid": {}}
    stale = 0
    bar = tqdm(range(1, train_cfg.epochs + 1), desc="train", disable=not progress)
    stopped = "epochs"
    for epoch in bar:
        net.train()
        total, count = 0.0, 0
        for rows in _length_buckets(tensors.lengths, train_cfg.batch_size, gen):
            seq, pos, keys = tensors.batch(rows, gen, train_cfg.time_shuffle_s)
            inputs = seq[:, :-1]
            valid = inputs != PAD
            # Project the vocabulary once per step, then gather: far cheaper than per position.
            hidden = net.encode_vectors(net.input_items(all_idx, tensors.text)[inputs], valid)
            sel = valid.nonzero(as_tuple=True)
            h = user_vectors_from_hidden(hidden[sel])
            logits = h @ net.output_items(all_idx, tensors.text).T
            if net.memory is not None:
                logits = logits + net.memory_scores(net.recency(inputs, *sel))
            logits[:, PAD] = -torch.inf
            if train_cfg.mask_consumed:
                # The protocol never ranks an item the user already consumed, so the softmax
                # should not spend probability mass pushing those items down either.
                consumed = keys[sel[0]] <= pos[sel][:, None]
                logits = logits.masked_fill(consumed, -torch.inf)
            loss = F.cross_entropy(logits, seq[:, 1:][sel])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            if ema_net is not net:
                with torch.no_grad():
                    for p_avg, p_now in zip(ema_net.parameters(), net.parameters(), strict=True):
                        p_avg.lerp_(p_now, 1.0 - train_cfg.ema)
            total += float(loss.detach()) * len(sel[0])
            count += len(sel[0])
        history["epoch"].append(epoch)
        history["loss"].append(total / count)
        elapsed = time.monotonic() - t0
        if epoch % train_cfg.eval_every == 0 or epoch == train_cfg.epochs:
            metrics = _fast_evaluate(ema_net, tensors, split, "valid")
            history["eval_epoch"].append(epoch)
            history["valid_ndcg@10"].append(metrics["ndcg@10"])
            if on_eval:
                on_eval(epoch, metrics)
            if metrics["ndcg@10"] > best["ndcg"]:
                best = {
                    "ndcg": metrics["ndcg@10"],
                    "epoch": epoch,
                    "state": {k: v.clone() for k, v in ema_net.state_dict().items()},
                    "valid": metrics,
                }
                stale = 0
            else:
                stale += 1
            bar.set_postfix(loss=f"{total / count:.3f}", ndcg=f"{metrics['ndcg@10']:.4f}",
                            best=f"{best['ndcg']:.4f}@{best['epoch']}")
            if stale >= train_cfg.patience:
                stopped = "early stop"
                break
        if elapsed > train_cfg.time_limit_s:
            stopped = "time limit"
            break
    bar.close()
    if best["state"] is not None:
        net.load_state_dict(best["state"])
    prior_trials: list[list[float]] = []
    if net.memory is not None and any(train_cfg.prior_scales):
        with torch.no_grad():
            net.memory_prior.copy_(cooccurrence_prior(
                tensors.histories, len(tensors.text), train_cfg.prior_window,
                train_cfg.prior_decay, train_cfg.prior_pop_alpha,
            ))
        # The counts hold training pairs only, so the validation targets judge the weight
        # without leaking; the test targets are not looked at. Weight 0 is the model as trained.
        best_scale = 0.0
        for scale in train_cfg.prior_scales:
            net.prior_scale.fill_(scale)
            metrics = _fast_evaluate(net, tensors, split, "valid")
            prior_trials.append([scale, metrics["ndcg@10"]])
            if on_eval:
                on_eval(-1, metrics)
            if metrics["ndcg@10"] > best["valid"].get("ndcg@10", -1.0):
                best["valid"], best_scale = metrics, scale
        net.prior_scale.fill_(best_scale)
        logger.info("co-occurrence prior weight %s (valid NDCG@10 by weight: %s)",
                    best_scale, prior_trials)
    train_s = time.monotonic() - t0
    test = _fast_evaluate(net, tensors, split, "test")
    metadata = {
        "trained_on": "ml-100k leave-one-out training interactions",
        "best_epoch": best["epoch"],
        "epochs_run": history["epoch"][-1],
        "stopped": stopped,
        "train_seconds": round(train_s, 1),
        "valid": best["valid"],
        "test": test,
        "prior_trials": prior_trials,
        "prior_scale": float(net.prior_scale) if net.memory is not None else 0.0,
        "train_config": _plain(asdict(train_cfg)),
        "history": history,
    }
    version = save_checkpoint(out_path, net, split.item_ids, split.text_model_id, metadata)
    plot = write_plot(history, Path(out_path).with_suffix(".png"), metadata)
    return {**metadata, "version": version, "plot": str(plot), "checkpoint": str(out_path)}


def _plain(value: Any) -> Any:
    """Tuples to lists, so the metadata loads with torch.load(weights_only=True) and as JSON."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def write_plot(
    history: Mapping[str, list[float]], path: Path, metadata: Mapping[str, Any] | None = None
) -> Path:
    """Training loss per epoch and validation NDCG@10 on a second axis, as one PNG; with the
    metadata also the chosen checkpoint's validation NDCG@10 after the prior, and its test."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(history["epoch"], history["loss"], color="tab:blue", label="train loss")
    ax.set_xlabel("epoch")
    ax.set_ylabel("cross-entropy (train)", color="tab:blue")
    ax2 = ax.twinx()
    ax2.plot(history["eval_epoch"], history["valid_ndcg@10"], color="tab:orange", marker=".",
             label="valid NDCG@10")
    ax2.set_ylabel("valid NDCG@10", color="tab:orange")
    title = "sequence interest model"
    if metadata:
        valid, test = metadata["valid"]["ndcg@10"], metadata["test"]["ndcg@10"]
        ax2.axhline(valid, color="tab:green", linestyle="--", linewidth=1)
        ax2.annotate(
            f"epoch {metadata['best_epoch']} + prior x{metadata['prior_scale']:g}: "
            f"valid {valid:.4f}",
            xy=(history["epoch"][0], valid), xytext=(0, -12), textcoords="offset points",
            color="tab:green", fontsize=8,
        )
        title += f" (test NDCG@10 {test:.4f}, Recall@10 {metadata['test']['recall@10']:.4f})"
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def train(
    data_dir: str | Path,
    out_path: str | Path,
    *,
    epochs: int = 200,
    model: SeqConfig | None = None,
    config: TrainConfig | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Train on MovieLens-100K's leave-one-out training interactions; write checkpoint + PNG."""
    split = split_data(load_movielens(data_dir))
    cfg = config or TrainConfig()
    cfg = TrainConfig(**{**asdict(cfg), "epochs": epochs})
    return train_on_split(split, out_path, model or SeqConfig(), cfg, progress=progress)


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m interest_server.offline.training --data DIR --out PATH [--evaluate-only]`."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", required=True, help="MovieLens-100K directory")
    parser.add_argument("--out", required=True, help="checkpoint file to write")
    parser.add_argument("--epochs", type=int, default=TrainConfig.epochs)
    parser.add_argument("--time-limit-s", type=float, default=DEFAULT_TIME_LIMIT_S)
    parser.add_argument("--seed", type=int, default=TrainConfig.seed)
    parser.add_argument("--threads", type=int, default=TrainConfig.threads,
                        help="torch CPU threads (0: leave torch's default)")
    parser.add_argument("--evaluate-only", action="store_true",
                        help="evaluate the checkpoint at --out instead of training")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if not args.evaluate_only:
        report = train(
            args.data,
            args.out,
            epochs=args.epochs,
            config=TrainConfig(
                seed=args.seed, time_limit_s=args.time_limit_s, threads=args.threads
            ),
            progress=not args.quiet,
        )
        report.pop("history")
        print(json.dumps(report, indent=2))
    model = SequenceInterestModel.load(args.out)
    metrics = offline_evaluate(model, load_movielens(args.data), progress=not args.quiet)
    print(json.dumps({"version": model.version, **metrics}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
