"""Behaviour interest function f: a time-decayed, event-weighted sum of item vectors."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from interest_server.events import EventType

# How strongly each event type says "more like this" (negative: "less like this").
EVENT_WEIGHTS: dict[EventType, float] = {
    EventType.VIEW: 0.3,
    EventType.CLICK: 0.6,
    EventType.LIKE: 1.5,
    EventType.DISLIKE: -1.5,
    EventType.PURCHASE: 2.0,
    EventType.SKIP: -0.5,
}
RATING_NEUTRAL = 2.5
"""A rating above this pulls the vector towards the item, below pushes it away."""
RATING_SCALE = 2.5
"""Rating distance from neutral that counts as weight 1 (so 5 stars = +1, 1 star = -0.6)."""


def event_weight(event_type: EventType, value: float | None) -> float:
    """Signed weight of one event."""
    if event_type == EventType.RATING:
        return ((value if value is not None else RATING_NEUTRAL) - RATING_NEUTRAL) / RATING_SCALE
    return EVENT_WEIGHTS[event_type]


@dataclass(frozen=True)
class WeightedItem:
    """One event's contribution: the item vector, its signed weight and when it happened."""

    vector: np.ndarray
    weight: float
    timestamp_ms: int
    item_id: str = ""
    event_type: EventType = EventType.VIEW


@dataclass(frozen=True)
class HistoryEntry:
    """An event already in the user's stored window (oldest first when passed to update)."""

    item_id: str
    event_type: EventType
    timestamp_ms: int


class InterestFunction(Protocol):
    """f: behaviour -> interest vector, updated per event batch with bounded work."""

    version: str
    """Written next to every stored vector, so vectors of different functions never mix."""
    dim: int
    history_length: int
    """How many stored window events update() needs (0: none, the accumulator suffices)."""
    standardise_scores: bool
    """Whether ranking should standardise this function's scores (logits) before mixing them
    with concept affinities (cosines)."""

    def update(self, acc: np.ndarray | None, t_ref: int, history: Sequence[HistoryEntry],
               new: Sequence[WeightedItem]) -> tuple[np.ndarray, int]:
        """The new stored vector and reference time after the new events."""
        ...

    def interest(self, acc: np.ndarray | None) -> np.ndarray | None:
        """The query vector for ranking, or None when there is no usable signal."""
        ...


class DecayedAverageModel:
    """I_u = normalise(sum_e w_e * 2^(-(t_ref - t_e) / half_life) * v_e).

    The accumulator is kept at a reference time t_ref = the newest event time. Folding events in
    is order-independent: an older event is added already decayed, a newer one moves t_ref and
    decays the accumulator. So replicas applying the same events in any order agree, which is
    what lets the store retry a conflicting write without changing the result.
    """

    name = "decayed-average"
    history_length = 0
    standardise_scores = False

    def __init__(self, half_life_s: float, version: str = "decayed-average", dim: int = 0) -> None:
        self.half_life_ms = half_life_s * 1000.0
        self.version = version
        self.dim = dim

    def update(self, acc: np.ndarray | None, t_ref: int, history: Sequence[HistoryEntry],
               new: Sequence[WeightedItem]) -> tuple[np.ndarray, int]:
        """Fold the new events in; the history is not needed."""
        return self.fold(acc, t_ref, new, self.dim)

    def _decay(self, dt_ms: float) -> float:
        # Clamp the exponent: a huge gap only needs to underflow to ~0, not raise.
        return math.pow(2.0, -min(dt_ms / self.half_life_ms, 1000.0))

    def fold(self, acc: np.ndarray | None, t_ref: int, items: Sequence[WeightedItem],
             dim: int) -> tuple[np.ndarray, int]:
        """Add events to an accumulator; returns the new accumulator and reference time."""
        out = np.zeros(dim, dtype=np.float64) if acc is None else acc.astype(np.float64)
        for item in items:
            if item.timestamp_ms >= t_ref:
                out *= self._decay(item.timestamp_ms - t_ref)
                t_ref = item.timestamp_ms
                out += item.weight * item.vector
            else:
                out += item.weight * self._decay(t_ref - item.timestamp_ms) * item.vector
        return out.astype(np.float32), t_ref

    @staticmethod
    def interest(acc: np.ndarray | None) -> np.ndarray | None:
        """The unit interest vector, or None when there is no usable signal."""
        if acc is None:
            return None
        norm = float(np.linalg.norm(acc))
        if not math.isfinite(norm) or norm < 1e-12:
            return None
        return (acc / norm).astype(np.float32)
