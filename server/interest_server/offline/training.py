"""Train the sequential interest model from events: a file, the server's event log in Redis,
or a dataset through its adapter (MovieLens-100K, under the leave-one-out protocol).

The model is validated on held-out targets and compared with popularity on them; a model that
does not beat popularity is not written unless forced."""

from __future__ import annotations

import argparse
import copy
import json
import logging
import math
import os
import random
import sys
import time
from collections.abc import Callable, Sequence
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
from interest_server.offline.batching import TrainTensors, length_buckets
from interest_server.offline.event_source import (
    CATALOG_HELP,
    ImportFileError,
    TrainingInput,
    read_catalog_file,
    read_events_file,
    read_redis_catalog,
    read_redis_events,
)
from interest_server.offline.model_eval import (
    fast_evaluate,
    fast_ranks,
    offline_evaluate,
    popularity_ranks,
)
from interest_server.offline.plots import training_curve
from interest_server.offline.prior import cooccurrence_prior
from interest_server.offline.protocol import rank_metrics
from interest_server.offline.sequences import (
    DEFAULT_VALID_FRACTION,
    SplitData,
    leave_one_out_split,
    time_split,
)

logger = logging.getLogger(__name__)

# Training under 10 minutes on 2 CPU cores, all included: the epoch loop gets 7, leaving room
# for embedding the catalog, the prior search and the final evaluation on a busy machine.
DEFAULT_TIME_LIMIT_S = 420.0
EXIT_REFUSED = 3
"""`interest-server train`'s exit code when the model does not beat popularity on validation."""
BEAT_Z = 1.645
"""A model beats popularity when its mean per-user NDCG@10 gain over popularity on the
validation targets exceeds this many standard errors (one-sided 95%): a model that only learnt
popularity, or a gain a few lucky users make, is not a better model, and the validation targets
also chose its epoch, which flatters it a little."""


class NotBetterThanPopularity(RuntimeError):
    """The trained model does not beat popularity on the validation targets; nothing written."""

    def __init__(self, comparison: dict[str, Any]) -> None:
        self.comparison = comparison
        model, pop = comparison["model"], comparison["popularity"]
        super().__init__(
            f"not writing the checkpoint: the model does not beat popularity on validation "
            f"({comparison['users']} users): NDCG@10 {model.get('ndcg@10', 0.0):.4f} vs "
            f"{pop.get('ndcg@10', 0.0):.4f}, HR@10 {model.get('recall@10', 0.0):.4f} vs "
            f"{pop.get('recall@10', 0.0):.4f} (gain {comparison['ndcg@10_gain']:+.4f}, needs "
            f"> {BEAT_Z} x its standard error {comparison['stderr']:.4f}). More events, or ones "
            "with more sequential structure, may help; --force writes it anyway")


def compare_with_popularity(net: SeqRecNet, tensors: TrainTensors,
                            split: SplitData) -> dict[str, Any]:
    """The model against popularity on the validation targets, user by user (see BEAT_Z)."""
    ranks = fast_ranks(net, tensors, split, "valid")
    pop = popularity_ranks(tensors, split, "valid")
    if not len(ranks):
        return {"users": 0, "model": {}, "popularity": {}, "ndcg@10_gain": 0.0,
                "stderr": 0.0, "beats": False}

    def ndcg10(r: np.ndarray) -> np.ndarray:
        return np.where(r < 10, 1.0 / np.log2(r + 2.0), 0.0)

    gain = ndcg10(ranks) - ndcg10(pop)
    stderr = float(gain.std(ddof=1) / math.sqrt(len(gain))) if len(gain) > 1 else 0.0
    mean = float(gain.mean())
    return {"users": len(gain), "model": rank_metrics(ranks), "popularity": rank_metrics(pop),
            "ndcg@10_gain": mean, "stderr": stderr,
            "beats": bool(mean > 0 and mean > BEAT_Z * stderr)}


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
    # Up to this many items each step's softmax runs over the whole catalog (MovieLens-100K's
    # 1,682 do); above it, over the batch's targets plus `negatives` uniformly drawn items,
    # corrected for how often each is drawn (logQ), so a step's cost follows the sample.
    full_softmax_items: int = 20_000
    negatives: int = 2048


def train_on_split(
    split: SplitData,
    out_path: str | Path,
    model_cfg: SeqConfig,
    train_cfg: TrainConfig,
    *,
    progress: bool = True,
    on_eval: Callable[[int, dict[str, float]], None] | None = None,
    source: str = "",
    refuse_below_popularity: bool = False,
) -> dict[str, Any]:
    """Train, keep the weights of the best validation NDCG@10, save them, and report.

    The report (and the checkpoint's metadata) compares the model with popularity on the
    validation targets; with `refuse_below_popularity`, a model whose NDCG@10 there is not
    above popularity's raises NotBetterThanPopularity and nothing is written."""
    random.seed(train_cfg.seed)
    np.random.seed(train_cfg.seed)
    torch.manual_seed(train_cfg.seed)
    if train_cfg.threads > 0:
        torch.set_num_threads(train_cfg.threads)
    t0 = time.monotonic()
    model_cfg = SeqConfig(
        **{**asdict(model_cfg), "n_items": len(split.item_ids), "text_dim": split.text.shape[1]}
    )
    tensors = TrainTensors(split, model_cfg.max_len)
    net = SeqRecNet(model_cfg)
    n_vocab = len(tensors.text)
    counts = np.bincount(np.concatenate([np.asarray(h, dtype=np.int64)
                                         for h in [[], *tensors.histories]]),
                         minlength=n_vocab).astype(np.float64)
    if net.capped:
        # The memory's slots go to the most frequent training items: they carry most of the
        # pairs, and a rare item's row would hold little the transformer does not.
        order = np.argsort(-counts[1:], kind="stable")[: net.memory_size] + 1
        net.set_memory_items(torch.from_numpy(order[counts[order] > 0]))
    sampled = n_vocab - 1 > train_cfg.full_softmax_items
    # Chance of an item entering a step's candidates per target of the batch (its share of
    # the training interactions) and per drawn negative (uniform): the logQ correction.
    target_share = torch.from_numpy(counts / max(1.0, counts.sum())).float()
    neg_gen = torch.Generator().manual_seed(train_cfg.seed + 1)
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
        "training %d parameters on %d windows, %d targets (%s, memory of %d items)",
        param_count(net),
        len(tensors.user),
        tensors.n_targets,
        f"sampled softmax, {train_cfg.negatives} negatives" if sampled else "full softmax",
        net.memory_size,
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
        for rows in length_buckets(tensors.lengths, train_cfg.batch_size, gen):
            seq, pos, keys = tensors.batch(rows, gen, train_cfg.time_shuffle_s)
            if sampled:
                loss = _sampled_loss(net, tensors, seq, pos, keys, target_share, neg_gen,
                                     train_cfg)
            else:
                loss = _full_loss(net, tensors, seq, pos, keys, all_idx, train_cfg)
            sel = (seq[:, :-1] != PAD).nonzero(as_tuple=True)
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
            metrics = fast_evaluate(ema_net, tensors, split, "valid")
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
                tensors.histories, net.memory_size + 1, train_cfg.prior_window,
                train_cfg.prior_decay, train_cfg.prior_pop_alpha,
                slots=net.memory_slots.numpy() if net.capped else None,
            ))
        # The counts hold training pairs only, so the validation targets judge the weight
        # without leaking; the test targets are not looked at. Weight 0 is the model as trained.
        best_scale = 0.0
        for scale in train_cfg.prior_scales:
            net.prior_scale.fill_(scale)
            metrics = fast_evaluate(net, tensors, split, "valid")
            prior_trials.append([scale, metrics["ndcg@10"]])
            if on_eval:
                on_eval(-1, metrics)
            if metrics["ndcg@10"] > best["valid"].get("ndcg@10", -1.0):
                best["valid"], best_scale = metrics, scale
        net.prior_scale.fill_(best_scale)
        logger.info("co-occurrence prior weight %s (valid NDCG@10 by weight: %s)",
                    best_scale, prior_trials)
    train_s = time.monotonic() - t0
    comparison = compare_with_popularity(net, tensors, split)
    if not comparison["beats"]:
        if refuse_below_popularity:
            raise NotBetterThanPopularity(comparison)
        logger.warning("the model does not beat popularity on validation (NDCG@10 %.4f vs "
                       "%.4f); writing it anyway", comparison["model"].get("ndcg@10", 0.0),
                       comparison["popularity"].get("ndcg@10", 0.0))
    test = fast_evaluate(net, tensors, split, "test")
    metadata = {
        "trained_on": source or "training interactions",
        "split": split.rule,
        "valid_users": len(split.valid),
        "popularity_valid": comparison["popularity"],
        "beats_popularity": comparison["beats"],
        "popularity_gain": {"ndcg@10": comparison["ndcg@10_gain"],
                            "stderr": comparison["stderr"]},
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
    plot = training_curve(history, Path(out_path).with_suffix(".png"), metadata)
    return {**metadata, "version": version, "plot": str(plot) if plot else None,
            "checkpoint": str(out_path)}


def _full_loss(net: SeqRecNet, tensors: TrainTensors, seq: torch.Tensor, pos: torch.Tensor,
               keys: torch.Tensor, all_idx: torch.Tensor, cfg: TrainConfig) -> torch.Tensor:
    """Cross-entropy of every next item against the whole catalog."""
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
    if cfg.mask_consumed:
        # The protocol never ranks an item the user already consumed, so the softmax
        # should not spend probability mass pushing those items down either.
        consumed = keys[sel[0]] <= pos[sel][:, None]
        logits = logits.masked_fill(consumed, -torch.inf)
    return F.cross_entropy(logits, seq[:, 1:][sel])


def _sampled_loss(net: SeqRecNet, tensors: TrainTensors, seq: torch.Tensor, pos: torch.Tensor,
                  keys: torch.Tensor, target_share: torch.Tensor, gen: torch.Generator,
                  cfg: TrainConfig) -> torch.Tensor:
    """Cross-entropy of every next item against the batch's targets plus uniform negatives.

    Only the items in the batch and the sample are projected, so a step costs the same for
    any catalog size. Each candidate's logit is lowered by the log of how many times it is
    expected among the candidates (batch targets follow popularity, negatives are uniform),
    which makes the sampled softmax an unbiased estimate of the full one's gradient in the
    limit, instead of one that over-punishes popular items.
    """
    inputs = seq[:, :-1]
    valid = inputs != PAD
    uniq, inverse = inputs.unique(return_inverse=True)
    hidden = net.encode_vectors(net.input_items(uniq, tensors.text[uniq])[inverse], valid)
    sel = valid.nonzero(as_tuple=True)
    targets = seq[:, 1:][sel]
    n_items = len(tensors.text) - 1
    negatives = torch.randint(1, n_items + 1, (cfg.negatives,), generator=gen)
    cand, col = torch.cat([targets, negatives]).unique(return_inverse=True)
    h = user_vectors_from_hidden(hidden[sel])
    logits = h @ net.output_items(cand, tensors.text[cand]).T
    if net.memory is not None:
        logits = logits + net.memory_scores(net.recency(inputs, *sel), cand)
    expected = len(targets) * target_share[cand] + cfg.negatives / n_items
    logits = logits - expected.log()
    if cfg.mask_consumed:
        consumed = keys[:, cand][sel[0]] <= pos[sel][:, None]
        logits = logits.masked_fill(consumed, -torch.inf)
    return F.cross_entropy(logits, col[: len(targets)])


def _plain(value: Any) -> Any:
    """Tuples to lists, so the metadata loads with torch.load(weights_only=True) and as JSON."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def train_input(
    data: TrainingInput,
    out_path: str | Path,
    *,
    split: str = "time",
    valid_fraction: float = DEFAULT_VALID_FRACTION,
    model: SeqConfig | None = None,
    config: TrainConfig | None = None,
    progress: bool = True,
    refuse_below_popularity: bool = True,
) -> dict[str, Any]:
    """Train on generic events + catalog; `split` "time" (the newest `valid_fraction` of the
    interactions validate) or "leave-one-out"; write the checkpoint + PNG."""
    seqs = make_split(data, split, valid_fraction)
    return train_on_split(seqs, out_path, model or SeqConfig(), config or TrainConfig(),
                          progress=progress, source=data.source,
                          refuse_below_popularity=refuse_below_popularity)


def make_split(data: TrainingInput, split: str, valid_fraction: float) -> SplitData:
    """The chosen split of the input (see sequences.time_split / leave_one_out_split)."""
    if split == "time":
        return time_split(data, valid_fraction)
    if split == "leave-one-out":
        return leave_one_out_split(data)
    raise ValueError(f"unknown split {split!r}: time or leave-one-out")


def train(
    data_dir: str | Path,
    out_path: str | Path,
    *,
    epochs: int = 200,
    model: SeqConfig | None = None,
    config: TrainConfig | None = None,
    progress: bool = True,
    refuse_below_popularity: bool = True,
) -> dict[str, Any]:
    """Train on MovieLens-100K (through its adapter) under leave-one-out; write checkpoint +
    PNG."""
    from interest_server.offline.movielens import load_movielens, training_input

    cfg = config or TrainConfig()
    cfg = TrainConfig(**{**asdict(cfg), "epochs": epochs})
    return train_input(training_input(load_movielens(data_dir)), out_path,
                       split="leave-one-out", model=model, config=cfg, progress=progress,
                       refuse_below_popularity=refuse_below_popularity)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="interest-server train", description=__doc__,
        epilog="Exit codes: 0 written; 1 bad input; 2 usage; 3 refused (the model does not "
               "beat popularity on validation; --force writes it anyway).")
    source = parser.add_argument_group("training data (one of)")
    source.add_argument("--data", help="MovieLens-100K directory (leave-one-out protocol)")
    source.add_argument("--events", metavar="FILE",
                        help="event file: RecBole .inter, GroupLens u.data, CSV/TSV with a "
                        "header (user_id, item_id[, type][, value|rating][, timestamp (s)|"
                        "timestamp_ms]) as `interest-server import` reads, or JSONL events as "
                        "`interest-client send-file` reads")
    source.add_argument("--redis-url", default=os.environ.get("INTEREST_REDIS_URL", ""),
                        help="train from the server's event log and catalog in this Redis "
                        "(env INTEREST_REDIS_URL); with --events, only the catalog is read")
    source.add_argument("--redis-url-file", default="", metavar="FILE",
                        help="file holding the Redis URL, instead of --redis-url")
    parser.add_argument("--redis-cluster", action="store_true",
                        help="the Redis URL names one node of a Redis Cluster")
    parser.add_argument("--tenant", default=os.environ.get("INTEREST_TENANT") or "default",
                        help="tenant whose events and catalog are read (env INTEREST_TENANT)")
    parser.add_argument("--catalog", metavar="FILE",
                        help="item texts for --events: JSONL {item_id, text, attributes} per "
                        "line (as `interest-client upsert-items` reads), or a RecBole *.item / "
                        "GroupLens u.item file")
    parser.add_argument("--delimiter", help="column separator of --events (default: detected)")
    parser.add_argument("--split", choices=("time", "leave-one-out"), default=None,
                        help="validation split (default: leave-one-out for --data, else time: "
                        "the newest --valid-fraction of the interactions)")
    parser.add_argument("--valid-fraction", type=float, default=DEFAULT_VALID_FRACTION,
                        help="share of the newest interactions the time split holds out")
    parser.add_argument("--out", required=True, help="checkpoint file to write")
    parser.add_argument("--force", action="store_true",
                        help="write the checkpoint even when it does not beat popularity")
    parser.add_argument("--epochs", type=int, default=TrainConfig.epochs)
    parser.add_argument("--time-limit-s", type=float, default=DEFAULT_TIME_LIMIT_S)
    parser.add_argument("--seed", type=int, default=TrainConfig.seed)
    parser.add_argument("--threads", type=int, default=TrainConfig.threads,
                        help="torch CPU threads (0: leave torch's default)")
    parser.add_argument("--memory-items", type=int, default=SeqConfig.memory_items,
                        help="items the item-item memory covers (the most frequent in "
                        "training; 0: no memory): the user vector is 65 + this many floats "
                        "at most, whatever the catalog's size")
    parser.add_argument("--served-check-users", type=int, default=2000, metavar="N",
                        help="after training, evaluate through the serving API on a fixed "
                        "random sample of N users (0: all); the training report above already "
                        "covers every user")
    parser.add_argument("--evaluate-only", action="store_true",
                        help="evaluate the checkpoint at --out instead of training")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    return parser


def load_input(args: argparse.Namespace) -> TrainingInput:
    """The training input the flags name (see _parser)."""
    if args.data:
        from interest_server.offline.movielens import load_movielens, training_input

        return training_input(load_movielens(args.data))
    client = keys = None
    if args.redis_url or args.redis_url_file:
        from interest_server.config import Settings
        from interest_server.state.keys import KeySpace
        from interest_server.state.redis_conn import connect_redis

        url = Settings(redis_url=args.redis_url,
                       redis_url_file=args.redis_url_file).resolved_redis_url()
        client = connect_redis(url, timeout_s=30.0, cluster=args.redis_cluster)
        keys = KeySpace(args.tenant)
    if args.events:
        events = read_events_file(args.events, delimiter=args.delimiter)
        if args.catalog:
            catalog = read_catalog_file(args.catalog)
        elif client is not None:
            catalog = read_redis_catalog(client, keys)
        else:
            raise ImportFileError(f"{args.events} holds events only; {CATALOG_HELP}")
        return TrainingInput(events, catalog, f"events file {Path(args.events).name}")
    if client is None:
        raise ImportFileError("give --data DIR, --events FILE or --redis-url URL")
    catalog = read_catalog_file(args.catalog) if args.catalog else read_redis_catalog(client,
                                                                                      keys)
    events = read_redis_events(client, keys, cluster=args.redis_cluster)
    if not events:
        raise ImportFileError(f"the event log of tenant {args.tenant!r} in Redis is empty")
    return TrainingInput(events, catalog, f"event log of tenant {args.tenant} in Redis")


def main(argv: Sequence[str] | None = None) -> int:
    """`interest-server train (--data DIR | --events FILE | --redis-url URL) --out PATH`."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.data and args.events:  # (--data ignores a Redis URL, e.g. one from the env)
        parser.error("give one of --data, --events, --redis-url (--redis-url with --events "
                     "reads only the catalog)")
    if args.redis_url and args.redis_url_file:
        parser.error("give --redis-url or --redis-url-file, not both")
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    split_rule = args.split or ("leave-one-out" if args.data else "time")
    try:
        data = load_input(args)
        split = make_split(data, split_rule, args.valid_fraction)
    except (ImportFileError, ValueError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    if not args.evaluate_only:
        try:
            report = train_on_split(
                split, args.out, SeqConfig(memory_items=args.memory_items),
                TrainConfig(epochs=args.epochs, seed=args.seed, time_limit_s=args.time_limit_s,
                            threads=args.threads),
                progress=not args.quiet, source=data.source,
                refuse_below_popularity=not args.force)
        except NotBetterThanPopularity as refused:
            print(f"refused: {refused}", file=sys.stderr)
            return EXIT_REFUSED
        report.pop("history")
        if not report["beats_popularity"]:
            print("warning: --force: the checkpoint does not beat popularity on validation",
                  file=sys.stderr)
        print(json.dumps(report, indent=2))
    model = SequenceInterestModel.load(args.out)
    metrics = offline_evaluate(model, split, progress=not args.quiet,
                               max_users=args.served_check_users)
    checked = min(len(split.users), args.served_check_users or len(split.users))
    print(json.dumps({"version": model.version, "served_check_users": checked, **metrics},
                     indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
