"""The evaluation protocol: one split rule for training and evaluation, hand-checked metrics."""

from __future__ import annotations

import math

import numpy as np
import pytest
from interest_server.offline.movielens import Interaction, LooTarget, Movie, MovieLens
from interest_server.offline.protocol import (
    leave_one_out,
    list_rank,
    rank_metrics,
    target_rank,
)
from interest_server.offline.sequences import split_data

MOVIES = [Movie(str(i), f"Film {i}", "1995", ("Drama",)) for i in range(1, 8)]


def _events(user: str, *item_times: tuple[str, int]) -> list[Interaction]:
    return [Interaction(user, item, 4.0, t) for item, t in item_times]


def _data(loo: dict[str, LooTarget] | None = None) -> MovieLens:
    # User 1 lists its events out of time order and rates item 2 twice; user 22 has two events
    # only; user 3 one (no pair of targets).
    interactions = (
        _events("1", ("3", 30), ("1", 10), ("2", 20), ("4", 40), ("2", 25), ("5", 50))
        + _events("22", ("6", 5), ("7", 6))
        + _events("3", ("1", 1))
    )
    return MovieLens(MOVIES, interactions, loo)


def _ids(split, user):  # noqa: ANN001, ANN202
    return ([x.item_id for x in split.train[user]], split.valid[user].item_id,
            split.test[user].item_id)


def test_without_a_split_file_the_last_two_events_are_the_targets() -> None:
    split = leave_one_out(_data())
    assert list(split.train) == ["1", "22"]  # first appearance; user 3 has no pair of targets
    assert _ids(split, "1") == (["1", "2", "2", "3"], "4", "5")
    assert _ids(split, "22") == ([], "6", "7")
    assert split.valid["1"].timestamp == 40 and split.test["1"].timestamp == 50


def test_a_split_file_names_the_targets_of_the_users_it_lists() -> None:
    loo = {"1": LooTarget("1", 3, "2", "4")}
    split = leave_one_out(_data(loo))
    # Every event on a target item leaves the history (item 2 was rated twice).
    assert _ids(split, "1") == (["1", "3", "5"], "2", "4")
    assert split.valid["1"].timestamp == 25  # the later of the two ratings
    assert _ids(split, "22") == ([], "6", "7")  # not in the file: the fallback


def test_a_split_file_target_the_user_never_rated_is_refused() -> None:
    with pytest.raises(ValueError, match="target 9 of user 1"):
        leave_one_out(_data({"1": LooTarget("1", 3, "9", "4")}))


@pytest.mark.parametrize("loo", [None, {"1": LooTarget("1", 3, "2", "4")}])
def test_training_uses_the_same_split_as_evaluation(loo: dict | None) -> None:
    text = np.ones((len(MOVIES), 4), dtype=np.float32)
    data = _data(loo)
    split = leave_one_out(data)
    seqs = split_data(data, text=text, text_model_id="m")  # no split file is no longer refused
    assert seqs.users == ["1", "22"]  # (length, id): numeric ids in numeric order
    for user in seqs.users:
        assert (seqs.train[user], seqs.valid[user], seqs.test[user]) == _ids(split, user)
        assert seqs.train_times[user] == [x.timestamp for x in split.train[user]]
    assert seqs.item_ids == [m.item_id for m in MOVIES]


def test_rank_metrics_match_hand_computed_values() -> None:
    # 0-based ranks: top, second, 10th, 11th, 20th, and a target not in the list.
    metrics = rank_metrics([0, 1, 9, 10, 19, math.inf])
    # 1/log2(r + 1) for the 1-based ranks 1, 2, 10, 11, 20, written out.
    g1, g2, g10 = 1.0, 0.6309297535714575, 0.2890648263178879
    g11, g20 = 0.27894294565112987, 0.227670248696953
    expected = {
        "recall@10": 3 / 6,
        "ndcg@10": (g1 + g2 + g10) / 6,
        "mrr@10": (1 + 1 / 2 + 1 / 10) / 6,
        "recall@20": 5 / 6,
        "ndcg@20": (g1 + g2 + g10 + g11 + g20) / 6,
        "mrr@20": (1 + 1 / 2 + 1 / 10 + 1 / 11 + 1 / 20) / 6,
    }
    assert metrics == pytest.approx(expected, rel=1e-12)


def test_list_ranks_and_score_ranks_give_the_same_metrics() -> None:
    """Evaluation ranks a served top-k list, training a full score vector: the same numbers."""
    scores = np.array([0.9, 0.1, 0.5, 0.7, 0.3, 0.8])
    ranked = [str(i) for i in np.argsort(-scores)]  # "0", "5", "3", "2", "4", "1"
    assert list_rank(ranked, "3") == 2 == target_rank(scores, 3, [])
    assert list_rank(ranked[:2], "3") == math.inf
    assert target_rank(scores, 3, [0]) == 1  # an excluded item is not ranked
    assert target_rank(np.array([0.5, 0.5, 0.1]), 1, []) == 1  # a tie counts against the target
    assert rank_metrics([list_rank(ranked, t) for t in "035"]) == rank_metrics([0, 2, 1])
