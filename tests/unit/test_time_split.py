"""The trainer's automatic validation split: a cut in time over generic events."""

from __future__ import annotations

import numpy as np
import pytest
from interest_server.events import EventType
from interest_server.offline.event_source import ItemCatalog, TrainEvent, TrainingInput
from interest_server.offline.sequences import leave_one_out_split, time_split

ITEMS = [f"i{i}" for i in range(12)]


def _input(events: list[TrainEvent]) -> TrainingInput:
    return TrainingInput(events, ItemCatalog(ITEMS, ITEMS), "test")


def _text() -> np.ndarray:
    return np.zeros((len(ITEMS), 4), dtype=np.float32)


def _item(u: int, t: int) -> str:
    return f"i{(u + t) % 12}"


def test_time_split_trains_on_the_past_and_validates_on_the_first_new_item() -> None:
    # 20 users, 10 distinct items each, at second t * 100 + u: the users' last events interleave.
    events = [TrainEvent(f"u{u}", _item(u, t), (t * 100 + u) * 1000)
              for u in range(20) for t in range(10)]
    # u0 after everything: a repeat of its history, a dislike, then two new items.
    events += [TrainEvent("u0", "i1", 950_000), TrainEvent("u0", "i11", 960_000, EventType.DISLIKE),
               TrainEvent("u0", "i10", 970_000), TrainEvent("u0", "i11", 980_000)]
    events.append(TrainEvent("late", "i3", 990_000))  # no history before the cut: not judged
    split = time_split(_input(events), 0.1, text=_text(), text_model_id="m")
    cut_s = int(split.rule.split("cut at ")[1].split(" ms")[0]) / 1000
    # 204 interactions: the newest 10% are late's, u0's three and most of the users' tenth.
    assert 900 < cut_s < 919
    assert "late" not in split.users
    assert split.train["u0"] == [_item(0, t) for t in range(10)]
    assert (split.valid["u0"], split.test["u0"]) == ("i10", "i11")
    for u in range(1, 20):
        before = [_item(u, t) for t in range(10) if t * 100 + u < cut_s]
        assert split.train[f"u{u}"] == before
        if len(before) == 10:
            assert f"u{u}" not in split.valid
        else:
            assert split.valid[f"u{u}"] == _item(u, 9) and f"u{u}" not in split.test
    assert len(split.valid) >= 10
    assert all(t < cut_s for times in split.train_times.values() for t in times)


def test_time_split_needs_validation_users() -> None:
    events = [TrainEvent(f"u{u}", f"i{t}", (t * 10 + u) * 1000) for u in range(5) for t in range(4)]
    with pytest.raises(ValueError, match="users have interactions on both sides"):
        time_split(_input(events), 0.1, text=_text(), text_model_id="m")
    same_time = [TrainEvent(f"u{u}", f"i{t}", 5) for u in range(30) for t in range(3)]
    with pytest.raises(ValueError, match="span no time before the cut"):
        time_split(_input(same_time), 0.1, text=_text(), text_model_id="m")


def test_leave_one_out_split_holds_out_the_last_two_interactions() -> None:
    events = [TrainEvent("u1", item, t) for t, item in enumerate(["i1", "i2", "i3", "i2", "i4"])]
    events.append(TrainEvent("u1", "i5", 9, EventType.SKIP))  # not an interaction
    events.append(TrainEvent("u2", "i1", 1))  # one interaction: no pair of targets
    split = leave_one_out_split(_input(events), _text(), "m")
    assert split.users == ["u1"]
    assert (split.valid["u1"], split.test["u1"]) == ("i2", "i4")
    assert split.train["u1"] == ["i1", "i3"]  # every event on a target item is held out
