"""The co-occurrence prior folded into the sequence model's memory after training."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from interest_server.model.sequence_model import PAD


def cooccurrence_prior(
    histories: Sequence[Sequence[int]],
    n_vocab: int,
    window: int = 10,
    decay: float = 0.9,
    pop_alpha: float = 0.25,
    slots: np.ndarray | None = None,
) -> torch.Tensor:
    """(n_vocab, n_vocab) how strongly item b accompanies item a in the training sequences.

    Every pair within `window` positions counts decay**(distance - 1), in both directions
    (ratings in a burst have arbitrary order). Rows are divided by the row total^(1 - alpha)
    and columns by the column total^alpha: mostly P(b | a), with popular b damped a little.
    With `slots` (vocabulary index -> memory slot, 0 for none; n_vocab then counts the slots),
    items are counted by slot and pairs with a slotless item are left out.
    """
    index: list[np.ndarray] = []
    weight: list[np.ndarray] = []
    for history in histories:
        seq = np.asarray(history, dtype=np.int64)
        if slots is not None:
            seq = slots[seq]
        for dist in range(1, min(window, len(seq) - 1) + 1):
            a, b = seq[:-dist], seq[dist:]
            w = np.full(len(a), decay ** (dist - 1))
            if slots is not None:
                keep = (a != PAD) & (b != PAD)
                a, b, w = a[keep], b[keep], w[keep]
            index += [a * n_vocab + b, b * n_vocab + a]
            weight += [w, w]
    if not index:
        return torch.zeros(n_vocab, n_vocab)
    counts = np.bincount(
        np.concatenate(index), np.concatenate(weight), minlength=n_vocab * n_vocab
    ).reshape(n_vocab, n_vocab)
    rows = counts.sum(axis=1, keepdims=True) + 1.0
    cols = counts.sum(axis=0, keepdims=True) + 1.0
    prior = counts / (rows ** (1.0 - pop_alpha) * cols**pop_alpha)
    prior[PAD, :] = 0.0
    prior[:, PAD] = 0.0
    return torch.from_numpy(prior.astype(np.float32))
