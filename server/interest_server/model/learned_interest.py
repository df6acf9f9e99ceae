"""The learned interest function: a trained sequence model over the user's stored window."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

from interest_server.events import EventType
from interest_server.model.interest_model import HistoryEntry, WeightedItem
from interest_server.model.sequence_model import SequenceInterestModel

# The model is trained on interactions (every MovieLens rating is one); explicit negative
# feedback is not an interaction and stays out of the sequence.
SEQUENCE_TYPES = frozenset({EventType.VIEW, EventType.CLICK, EventType.LIKE, EventType.PURCHASE,
                            EventType.RATING})


class LearnedInterest:
    """Re-encodes the newest `max_len` interactions on every update: the work per event batch is
    bounded by the window, never by the user's whole history."""

    history_length: int
    standardise_scores = True

    def __init__(self, model: SequenceInterestModel,
                 text_vector: Callable[[str], np.ndarray], text_dim: int) -> None:
        self.model = model
        self.text_vector = text_vector
        self.text_dim = text_dim
        self.version = model.version
        self.dim = model.dim
        self.history_length = model.max_len

    def update(self, acc: np.ndarray | None, t_ref: int, history: Sequence[HistoryEntry],
               new: Sequence[WeightedItem]) -> tuple[np.ndarray, int]:
        """The model's user vector for the window plus the new events."""
        ids = [h.item_id for h in history if h.event_type in SEQUENCE_TYPES]
        ids += [n.item_id for n in new if n.event_type in SEQUENCE_TYPES]
        ids = ids[-self.model.max_len:]
        t_new = max([t_ref, *(n.timestamp_ms for n in new)])
        if not ids:
            return (np.zeros(self.dim, dtype=np.float32) if acc is None else acc), t_new
        texts = np.stack([self.text_vector(i) for i in ids]).astype(np.float32)
        vector = self.model.user_vector(ids, texts)
        if vector is None:
            return np.zeros(self.dim, dtype=np.float32), t_new
        return vector.astype(np.float32), t_new

    def item_matrix(self, item_ids: list[str], text_vectors: np.ndarray) -> np.ndarray:
        """Items in the model's scoring space (the index keeps them as a second matrix)."""
        return self.model.item_matrix(item_ids, text_vectors)

    def interest(self, acc: np.ndarray | None) -> np.ndarray | None:
        """The stored vector as is (scores are dot products with the model's item matrix)."""
        if acc is None or len(acc) != self.dim:
            return None
        norm = float(np.linalg.norm(acc))
        return None if not math.isfinite(norm) or norm == 0.0 else acc
