"""The behaviour interest function: order-independent folding, decay, weights, normalisation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from interest_server.events import EventType
from interest_server.model.interest_model import (
    EVENT_WEIGHTS,
    DecayedAverageModel,
    WeightedItem,
    event_weight,
)

DIM = 16
DAY_MS = 86_400_000
HALF_LIFE_S = 86_400.0  # one day


def unit(rng: np.random.Generator, dim: int = DIM) -> np.ndarray:
    v = rng.standard_normal(dim)
    return (v / np.linalg.norm(v)).astype(np.float32)


def random_events(rng: np.random.Generator, n: int) -> list[WeightedItem]:
    base = 1_700_000_000_000
    return [WeightedItem(unit(rng), float(rng.uniform(-1.5, 2.0)),
                         base + int(rng.integers(0, 10 * DAY_MS))) for _ in range(n)]


def direct_sum(events: list[WeightedItem], half_life_ms: float) -> tuple[np.ndarray, int]:
    """The definition: sum of w * 2^(-(t_ref - t) / h) * v at t_ref = the newest time."""
    t_ref = max(e.timestamp_ms for e in events)
    acc = np.zeros(DIM)
    for e in events:
        acc += e.weight * 2.0 ** (-(t_ref - e.timestamp_ms) / half_life_ms) * e.vector
    return acc, t_ref


def test_fold_matches_the_definition() -> None:
    rng = np.random.default_rng(0)
    events = random_events(rng, 40)
    model = DecayedAverageModel(HALF_LIFE_S)
    acc, t_ref = model.fold(None, 0, events, DIM)
    expected, expected_t = direct_sum(events, HALF_LIFE_S * 1000)
    assert t_ref == expected_t
    assert acc.dtype == np.float32
    np.testing.assert_allclose(acc, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("seed", range(5))
def test_fold_is_order_independent(seed: int) -> None:
    rng = np.random.default_rng(seed)
    events = random_events(rng, 30)
    model = DecayedAverageModel(HALF_LIFE_S)
    reference, t_ref = model.fold(None, 0, sorted(events, key=lambda e: e.timestamp_ms), DIM)
    assert np.linalg.norm(reference) > 0.1
    for _ in range(5):
        order = rng.permutation(len(events))
        acc, t = model.fold(None, 0, [events[i] for i in order], DIM)
        assert t == t_ref
        np.testing.assert_allclose(acc, reference, rtol=1e-5, atol=1e-6)


def test_fold_in_batches_out_of_order_equals_one_fold() -> None:
    rng = np.random.default_rng(7)
    events = random_events(rng, 30)
    model = DecayedAverageModel(HALF_LIFE_S)
    whole, t_whole = model.fold(None, 0, events, DIM)
    # Newest events first, then older stragglers, in uneven batches (as replicas may see them).
    shuffled = sorted(events, key=lambda e: -e.timestamp_ms)
    acc, t_ref = None, 0
    for batch in (shuffled[:3], shuffled[3:4], shuffled[4:20], shuffled[20:]):
        acc, t_ref = model.fold(acc, t_ref, batch, DIM)
    assert t_ref == t_whole
    np.testing.assert_allclose(acc, whole, rtol=1e-5, atol=1e-6)


def test_event_one_half_life_older_counts_half() -> None:
    model = DecayedAverageModel(HALF_LIFE_S)
    a, b = np.eye(DIM, dtype=np.float32)[0], np.eye(DIM, dtype=np.float32)[1]
    t = 1_700_000_000_000
    acc, t_ref = model.fold(None, 0, [WeightedItem(a, 1.0, t - DAY_MS),
                                      WeightedItem(b, 1.0, t)], DIM)
    assert t_ref == t
    assert acc[0] == pytest.approx(0.5, rel=1e-6)
    assert acc[1] == pytest.approx(1.0, rel=1e-6)
    # The same when the newer event arrives later and decays the accumulator instead.
    acc2, _ = model.fold(None, 0, [WeightedItem(a, 1.0, t - DAY_MS)], DIM)
    acc2, _ = model.fold(acc2, t - DAY_MS, [WeightedItem(b, 1.0, t)], DIM)
    np.testing.assert_allclose(acc2, acc, rtol=1e-6)
    # Two half-lives: a quarter.
    acc3, _ = model.fold(None, 0, [WeightedItem(a, 1.0, t - 2 * DAY_MS),
                                   WeightedItem(b, 0.0, t)], DIM)
    assert acc3[0] == pytest.approx(0.25, rel=1e-6)


def test_negative_weight_pushes_away_from_disliked_item() -> None:
    rng = np.random.default_rng(3)
    model = DecayedAverageModel(HALF_LIFE_S)
    liked = [unit(rng) for _ in range(5)]
    disliked = unit(rng)
    t = 1_700_000_000_000
    acc, t_ref = model.fold(None, 0, [WeightedItem(v, 1.0, t + i) for i, v in enumerate(liked)],
                            DIM)
    before = float(model.interest(acc) @ disliked)
    acc, _ = model.fold(acc, t_ref, [WeightedItem(disliked, event_weight(EventType.DISLIKE, None),
                                                  t + 10)], DIM)
    after = float(model.interest(acc) @ disliked)
    assert after < before - 0.1
    # Only a dislike: the interest points straight away from the item.
    only, _ = model.fold(None, 0, [WeightedItem(disliked, -1.5, t)], DIM)
    assert float(model.interest(only) @ disliked) == pytest.approx(-1.0, abs=1e-6)


@pytest.mark.parametrize(("event_type", "value", "expected"), [
    (EventType.RATING, 5.0, 1.0),
    (EventType.RATING, 1.0, -0.6),
    (EventType.RATING, 2.5, 0.0),
    (EventType.RATING, None, 0.0),
    (EventType.RATING, 4.0, 0.6),
    (EventType.LIKE, None, 1.5),
    (EventType.DISLIKE, None, -1.5),
    (EventType.VIEW, None, 0.3),
    (EventType.CLICK, 7.0, 0.6),  # value only matters for ratings
    (EventType.PURCHASE, None, 2.0),
    (EventType.SKIP, None, -0.5),
])
def test_event_weight(event_type: EventType, value: float | None, expected: float) -> None:
    assert event_weight(event_type, value) == pytest.approx(expected, abs=1e-12)


def test_every_event_type_has_a_weight() -> None:
    for t in EventType:
        assert math.isfinite(event_weight(t, 3.0))
    assert set(EVENT_WEIGHTS) == set(EventType) - {EventType.RATING}


@pytest.mark.parametrize("acc", [
    None,
    np.zeros(DIM, dtype=np.float32),
    np.full(DIM, 1e-15, dtype=np.float32),
    np.array([np.nan] + [1.0] * (DIM - 1), dtype=np.float32),
    np.array([np.inf] + [0.0] * (DIM - 1), dtype=np.float32),
    np.array([-np.inf, np.inf] + [0.0] * (DIM - 2), dtype=np.float32),
])
def test_interest_is_none_without_usable_signal(acc: np.ndarray | None) -> None:
    assert DecayedAverageModel.interest(acc) is None


def test_interest_is_the_unit_direction() -> None:
    acc = np.arange(DIM, dtype=np.float32) - 3.0
    out = DecayedAverageModel.interest(acc)
    assert out is not None
    assert out.dtype == np.float32
    assert float(np.linalg.norm(out)) == pytest.approx(1.0, abs=1e-6)
    np.testing.assert_allclose(out, acc / np.linalg.norm(acc), rtol=1e-6)
    small = np.full(DIM, 1e-6, dtype=np.float32)
    np.testing.assert_allclose(DecayedAverageModel.interest(small), np.full(DIM, 0.25), rtol=1e-5)


@pytest.mark.parametrize("gap_ms", [10**12, 253_402_300_799_999, 10**18])
def test_huge_time_gaps_neither_overflow_nor_nan(gap_ms: int) -> None:
    rng = np.random.default_rng(11)
    model = DecayedAverageModel(60.0)  # a one-minute half-life makes the gap enormous
    old, new = unit(rng), unit(rng)
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        # Newer event after the old one: the accumulator is decayed to ~0.
        acc, t_ref = model.fold(None, 0, [WeightedItem(old, 2.0, 0)], DIM)
        acc, t_ref = model.fold(acc, t_ref, [WeightedItem(new, 1.0, gap_ms)], DIM)
        assert t_ref == gap_ms
        assert np.all(np.isfinite(acc))
        np.testing.assert_allclose(acc, new, atol=1e-6)
        # Ancient event after the new one: it is added already decayed to ~0.
        acc2, t2 = model.fold(acc, t_ref, [WeightedItem(old, 2.0, 0)], DIM)
        assert t2 == gap_ms
        np.testing.assert_allclose(acc2, new, atol=1e-6)
        interest = model.interest(acc2)
    assert interest is not None
    assert float(interest @ new) == pytest.approx(1.0, abs=1e-5)
