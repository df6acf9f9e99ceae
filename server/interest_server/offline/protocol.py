"""The offline evaluation protocol: the leave-one-out split and the ranking metrics."""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from interest_server.offline.movielens import Interaction, MovieLens, user_sequences

logger = logging.getLogger(__name__)

CUTOFFS = (10, 20)


@dataclass
class Split:
    """Per user: the training history (oldest first), then the validation and test targets.

    The dicts follow the users' first appearance in the data; users with fewer than two events
    have no pair of targets and are left out.
    """

    train: dict[str, list[Interaction]]
    valid: dict[str, Interaction]
    test: dict[str, Interaction]


def leave_one_out(data: MovieLens) -> Split:
    """Targets from the dataset's split file (loo_split.tsv, RecBole's split) for the users it
    names; for the others, and for every user when there is no split file, the second-last
    event by time is the validation target and the last one the test target.

    The history is the user's events in time order minus every event on either target item.
    """
    split = Split({}, {}, {})
    for user, seq in user_sequences(data.interactions).items():
        target = data.loo.get(user) if data.loo else None
        if target is None and len(seq) < 2:
            continue
        valid_id = target.valid_item_id if target else seq[-2].item_id
        test_id = target.test_item_id if target else seq[-1].item_id
        by_item = {x.item_id: x for x in seq}
        for item in (valid_id, test_id):
            if item not in by_item:
                raise ValueError(f"the split file's target {item} of user {user} is not "
                                 "among the user's interactions")
        split.valid[user] = by_item[valid_id]
        split.test[user] = by_item[test_id]
        split.train[user] = [x for x in seq if x.item_id not in (valid_id, test_id)]
        if target is not None and len(split.train[user]) != target.n_train:
            logger.warning("user %s: %d training items, the split file says %d",
                           user, len(split.train[user]), target.n_train)
    return split


def rank_metrics(ranks: Sequence[float] | np.ndarray) -> dict[str, float]:
    """Recall (= hit rate, one target per user), NDCG and MRR at the cutoffs, averaged over
    users, from each user's 0-based rank of the target (math.inf when it was not ranked)."""
    ranks = np.asarray(ranks, dtype=np.float64)
    out: dict[str, float] = {}
    for k in CUTOFFS:
        hit = ranks < k
        out[f"recall@{k}"] = float(hit.mean())
        out[f"ndcg@{k}"] = float(np.where(hit, 1.0 / np.log2(ranks + 2.0), 0.0).mean())
        out[f"mrr@{k}"] = float(np.where(hit, 1.0 / (ranks + 1.0), 0.0).mean())
    return out


def list_rank(ranked: Sequence[str], target: str) -> float:
    """0-based position of `target` in a recommended list, math.inf when absent."""
    return ranked.index(target) if target in ranked else math.inf


def target_rank(scores: np.ndarray, target: int, excluded: Sequence[int]) -> int:
    """0-based rank of `target` among the items not excluded; a tie counts against it."""
    scores = scores.astype(np.float64, copy=True)
    scores[list(excluded)] = -np.inf
    return int((scores >= scores[target]).sum()) - 1
