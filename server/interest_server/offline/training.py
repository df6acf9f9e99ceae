"""Train the sequential interest model on MovieLens-100K under the leave-one-out protocol."""

from __future__ import annotations

import argparse
import copy
import json
import logging
import math
import random
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
from interest_server.offline.model_eval import fast_evaluate, offline_evaluate
from interest_server.offline.movielens import load_movielens
from interest_server.offline.plots import training_curve
from interest_server.offline.prior import cooccurrence_prior
from interest_server.offline.sequences import SplitData, split_data

logger = logging.getLogger(__name__)

# Training under 10 minutes on 2 CPU cores, all included: the epoch loop gets 7, leaving room
# for embedding the catalog, the prior search and the final evaluation on a busy machine.
DEFAULT_TIME_LIMIT_S = 420.0


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
    tensors = TrainTensors(split, model_cfg.max_len)
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
        for rows in length_buckets(tensors.lengths, train_cfg.batch_size, gen):
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
                tensors.histories, len(tensors.text), train_cfg.prior_window,
                train_cfg.prior_decay, train_cfg.prior_pop_alpha,
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
    test = fast_evaluate(net, tensors, split, "test")
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
    plot = training_curve(history, Path(out_path).with_suffix(".png"), metadata)
    return {**metadata, "version": version, "plot": str(plot) if plot else None,
            "checkpoint": str(out_path)}


def _plain(value: Any) -> Any:
    """Tuples to lists, so the metadata loads with torch.load(weights_only=True) and as JSON."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


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
