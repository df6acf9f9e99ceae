"""Events as training sequences: the item vocabulary, its text vectors, and the split into
training histories and held-out targets (leave-one-out, or a cut in time)."""

from __future__ import annotations

import hashlib
import logging
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from interest_server.offline.event_source import (
    TrainEvent,
    TrainingInput,
    catalog_vectors,
    sequence_events,
)

logger = logging.getLogger(__name__)

DEFAULT_VALID_FRACTION = 0.1
"""The newest share of events the time split holds out."""
MIN_VALID_USERS = 10
"""Fewer validation targets than this cannot tell a model from popularity."""


@dataclass
class SplitData:
    """Training histories (oldest first) and held-out targets: every user of `users` trains;
    `valid` and `test` name the users that have such a target (all of them under
    leave-one-out, those active after the cut under the time split)."""

    item_ids: list[str]  # vocabulary order; vocabulary index = position + 1
    text: np.ndarray  # (n_items, text_dim) text vectors in vocabulary order
    text_model_id: str
    users: list[str]
    train: dict[str, list[str]]
    valid: dict[str, str]
    test: dict[str, str]
    # Event times (seconds) of the training histories; optional, used only for augmentation.
    train_times: dict[str, list[float]] | None = None
    rule: str = "leave-one-out"  # how the targets were chosen, in words (checkpoint metadata)


def embed_items(
    texts: Sequence[str], cache_dir: str | Path | None = None
) -> tuple[np.ndarray, str]:
    """Text vectors of the items and the encoder's model id, cached on disk by text + model."""
    from interest_server.model.encoder import TextEncoder
    from interest_server.model.encoder_weights import default_model_dir, model_id_for

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


def user_histories(events: Iterable[TrainEvent]) -> dict[str, list[TrainEvent]]:
    """Interactions grouped by user (first appearance order), each sorted by time; ties keep
    their input order (a stable sort), which is the only order a shared second has."""
    by_user: dict[str, list[TrainEvent]] = {}
    for event in sequence_events(events):
        by_user.setdefault(event.user_id, []).append(event)
    for seq in by_user.values():
        seq.sort(key=lambda e: e.timestamp_ms)
    return by_user


def _vocabulary(data: TrainingInput, histories: dict[str, list[TrainEvent]],
                text: np.ndarray | None, text_model_id: str) -> tuple[list[str], np.ndarray, str]:
    """The catalog, then any item only the events name (embedded from "" text)."""
    item_ids = list(data.catalog.item_ids)
    known = set(item_ids)
    for seq in histories.values():
        for event in seq:
            if event.item_id not in known:
                known.add(event.item_id)
                item_ids.append(event.item_id)
    if len(item_ids) > len(data.catalog.item_ids):
        logger.warning("%d items of the events are not in the catalog: they train from an "
                       "empty text", len(item_ids) - len(data.catalog.item_ids))
    if text is None:
        text, text_model_id = catalog_vectors(data.catalog, item_ids)
    return item_ids, np.asarray(text, dtype=np.float32), text_model_id


def _ordered(users: Iterable[str]) -> list[str]:
    # (len, id): numeric ids sort numerically.
    return sorted(users, key=lambda u: (len(u), u))


def leave_one_out_split(data: TrainingInput, text: np.ndarray | None = None,
                        text_model_id: str = "") -> SplitData:
    """Per user, the second-last interaction by time is the validation target and the last the
    test target (or the pair `data.targets` names); the history is the rest minus every event
    on either target item. Users with fewer than two interactions are left out."""
    histories = user_histories(data.events)
    item_ids, text, text_model_id = _vocabulary(data, histories, text, text_model_id)
    train: dict[str, list[TrainEvent]] = {}
    valid: dict[str, str] = {}
    test: dict[str, str] = {}
    for user, seq in histories.items():
        target = data.targets.get(user) if data.targets else None
        if target is None and len(seq) < 2:
            continue
        valid_id, test_id = (target[0], target[1]) if target else (seq[-2].item_id,
                                                                  seq[-1].item_id)
        consumed = {e.item_id for e in seq}
        for item in (valid_id, test_id):
            if item not in consumed:
                raise ValueError(f"the split file's target {item} of user {user} is not "
                                 "among the user's interactions")
        valid[user], test[user] = valid_id, test_id
        train[user] = [e for e in seq if e.item_id not in (valid_id, test_id)]
        if target is not None and len(train[user]) != target[2]:
            logger.warning("user %s: %d training items, the split file says %d",
                           user, len(train[user]), target[2])
    users = _ordered(train)
    return SplitData(
        item_ids=item_ids, text=text, text_model_id=text_model_id, users=users,
        train={u: [e.item_id for e in train[u]] for u in users},
        valid={u: valid[u] for u in users}, test={u: test[u] for u in users},
        train_times={u: [e.timestamp_ms / 1000 for e in train[u]] for u in users},
        rule="leave-one-out: each user's second-last interaction validates, the last tests",
    )


def time_split(data: TrainingInput, fraction: float = DEFAULT_VALID_FRACTION,
               text: np.ndarray | None = None, text_model_id: str = "") -> SplitData:
    """A cut in time: the newest `fraction` of the interactions is held out, the rest trains.

    The cut is the time below which 1 - fraction of the interactions lie. Every user trains on
    their interactions before it; a user with a history before the cut and an interaction at or
    after it is validated on their first new item after it (the history's items are never
    ranked, so repeats are passed over) and tested on the next one. Nothing at or after the cut
    trains, so no user's future informs the model judged on it, and the first item after the
    cut is what a model deployed at the cut is asked next. Users first seen after the cut have
    no history to learn from and are not judged (the server serves them popularity)."""
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"validation fraction {fraction} must be in (0, 1)")
    histories = user_histories(data.events)
    times = np.array([e.timestamp_ms for seq in histories.values() for e in seq])
    if len(times) == 0:
        raise ValueError("no interactions (view, click, like, purchase or rating events)")
    cut = float(np.quantile(times, 1.0 - fraction, method="higher"))
    if cut <= times.min():
        raise ValueError("the events span no time before the cut: they need timestamps (or, "
                         "without any, file order) to choose a time-based validation split")
    item_ids, text, text_model_id = _vocabulary(data, histories, text, text_model_id)
    train: dict[str, list[TrainEvent]] = {}
    valid: dict[str, str] = {}
    test: dict[str, str] = {}
    for user, seq in histories.items():
        past = [e for e in seq if e.timestamp_ms < cut]
        if not past:
            continue
        train[user] = past
        seen = {e.item_id for e in past}
        new = []
        for event in seq[len(past):]:
            if event.item_id not in seen:
                seen.add(event.item_id)
                new.append(event.item_id)
            if len(new) == 2:
                break
        if new:
            valid[user] = new[0]
        if len(new) == 2:
            test[user] = new[1]
    if len(valid) < MIN_VALID_USERS:
        raise ValueError(
            f"only {len(valid)} users have interactions on both sides of the time cut "
            f"(newest {fraction:.0%} of {len(times)} interactions): at least "
            f"{MIN_VALID_USERS} are needed to validate; give more events or a larger fraction")
    users = _ordered(train)
    return SplitData(
        item_ids=item_ids, text=text, text_model_id=text_model_id, users=users,
        train={u: [e.item_id for e in train[u]] for u in users},
        valid={u: valid[u] for u in users if u in valid},
        test={u: test[u] for u in users if u in test},
        train_times={u: [e.timestamp_ms / 1000 for e in train[u]] for u in users},
        rule=f"time: the newest {fraction:.0%} of interactions held out (cut at "
             f"{int(cut)} ms); each user's first new item after the cut validates, the next "
             "tests",
    )


def split_data(data: Any, text: np.ndarray | None = None, text_model_id: str = "") -> SplitData:
    """MovieLens through its adapter under leave-one-out (the benchmark protocol); kept for
    callers that hold a loaded `movielens.MovieLens`."""
    from interest_server.offline.movielens import training_input

    return leave_one_out_split(training_input(data), text, text_model_id)
