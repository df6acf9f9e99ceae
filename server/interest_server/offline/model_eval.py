"""The protocol applied to a sequence model without a server: through the serving API, and
batched over users for early stopping."""

from __future__ import annotations

import random
from collections.abc import Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from interest_server.model.sequence_model import (
    PAD,
    SeqRecNet,
    SequenceInterestModel,
    user_vectors_from_hidden,
)
from interest_server.offline.batching import TrainTensors
from interest_server.offline.movielens import MovieLens
from interest_server.offline.protocol import rank_metrics, target_rank
from interest_server.offline.sequences import SplitData, split_data


def offline_evaluate(
    model: SequenceInterestModel,
    data: MovieLens | SplitData,
    *,
    splits: Sequence[str] = ("valid", "test"),
    progress: bool = False,
    max_users: int = 0,
) -> dict[str, dict[str, float]]:
    """The leave-one-out protocol through the serving API, over every user, or over a fixed
    random sample of `max_users` of them (> 0): each user costs a full scoring of the catalog,
    which at 100k items and tens of thousands of users took longer than the training itself.

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
    users = list(split.users)
    if 0 < max_users < len(users):
        chosen = set(random.Random(0).sample(users, max_users))
        users = [u for u in users if u in chosen]
    results: dict[str, dict[str, float]] = {}
    for name in splits:
        ranks = []
        targets = _targets(split, name)
        for user in tqdm([u for u in users if u in targets], desc=f"evaluate {name}",
                         disable=not progress):
            history = list(split.train[user])
            if name == "test":
                history.append(split.valid[user])
            target = targets[user]
            vector = model.user_vector(history, split.text[[col[i] for i in history]])
            # An empty history scores by bias only: the protocol still ranks that user.
            if vector is None:
                vector = model.prior_vector()
            ranks.append(target_rank(items @ vector, col[target], [col[i] for i in history]))
        results[name] = rank_metrics(np.array(ranks)) if ranks else {}
    return results


def fast_evaluate(
    net: SeqRecNet, tensors: TrainTensors, split: SplitData, name: str
) -> dict[str, float]:
    """Same protocol as `offline_evaluate`, batched over users (used for early stopping).
    Users without a target for `name` are passed over; no target at all gives {}."""
    ranks = fast_ranks(net, tensors, split, name)
    return rank_metrics(ranks) if len(ranks) else {}


def fast_ranks(net: SeqRecNet, tensors: TrainTensors, split: SplitData, name: str) -> np.ndarray:
    """Each judged user's 0-based rank of the `name` target, in `split.users` order."""
    net.eval()
    max_len = net.cfg.max_len
    targets = _targets(split, name)
    row_of = {user: u for u, user in enumerate(split.users)}
    judged = [user for user in split.users if user in targets]
    ranks: list[int] = []
    with torch.inference_mode():
        # Scored in two parts rather than as item_vectors: the (items, memory slots) matrix of
        # a large catalog would not fit, while the memory's share is computed per user batch.
        items = net.output_items(torch.arange(len(tensors.text)), tensors.text)
        for start in range(0, len(judged), 256):
            users = judged[start : start + 256]
            hists = []
            for user in users:
                hist = list(tensors.histories[row_of[user]])
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
            scores = user_vectors_from_hidden(hidden) @ items.T
            if net.memory is not None:
                last = torch.full((len(users),), width - 1, dtype=torch.long)
                scores += net.memory_scores(net.recency(idx, torch.arange(len(users)), last))
            for r in range(len(users)):
                if not hists[r]:
                    scores[r] = items[:, net.cfg.dim]  # bias only
            scores[:, PAD] = -torch.inf
            for r, user in enumerate(users):
                target = tensors.vocab[targets[user]]
                row = scores[r].clone()
                row[hists[r]] = -torch.inf
                ranks.append(int((row >= row[target]).sum()) - 1)
    return np.array(ranks, dtype=np.float64)


def popularity_evaluate(tensors: TrainTensors, split: SplitData, name: str) -> dict[str, float]:
    """The baseline a model must beat: items ranked by their count in the training histories,
    under the same protocol (consumed items excluded, a tie counts against the target)."""
    ranks = popularity_ranks(tensors, split, name)
    return rank_metrics(ranks) if len(ranks) else {}


def popularity_ranks(tensors: TrainTensors, split: SplitData, name: str) -> np.ndarray:
    """Each judged user's rank of the `name` target by popularity, in `split.users` order."""
    targets = _targets(split, name)
    counts = np.zeros(len(tensors.text), dtype=np.float64)
    for hist in tensors.histories:
        np.add.at(counts, hist, 1.0)
    counts[PAD] = -np.inf
    ranks = []
    for u, user in enumerate(split.users):
        if user not in targets:
            continue
        hist = list(tensors.histories[u])
        if name == "test":
            hist.append(tensors.vocab[split.valid[user]])
        ranks.append(target_rank(counts, tensors.vocab[targets[user]], hist))
    return np.array(ranks, dtype=np.float64)


def _targets(split: SplitData, name: str) -> dict[str, str]:
    if name not in ("valid", "test"):
        raise ValueError(f"unknown split {name!r}")
    return split.valid if name == "valid" else split.test
