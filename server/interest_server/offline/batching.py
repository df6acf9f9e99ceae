"""Training windows as tensors, and random batches of similar length."""

from __future__ import annotations

import numpy as np
import torch

from interest_server.model.sequence_model import PAD
from interest_server.offline.sequences import SplitData


class TrainTensors:
    """Training windows, left-padded, plus what the loss and fast evaluation need."""

    def __init__(self, split: SplitData, max_len: int) -> None:
        self.vocab = {item: i + 1 for i, item in enumerate(split.item_ids)}
        n_vocab = len(split.item_ids) + 1
        text = np.zeros((n_vocab, split.text.shape[1]), dtype=np.float32)
        text[1:] = split.text
        self.text = torch.from_numpy(text)
        self.n_users = len(split.users)
        self.n_vocab = n_vocab
        # Per user, the items of the training history and the index of each one's first
        # occurrence: batch() spreads them into "consumed up to position g" keys. Kept sparse,
        # as a (users, items) matrix would not fit a large catalog.
        self.first: list[tuple[torch.Tensor, torch.Tensor]] = []
        windows: list[tuple[int, int, list[int]]] = []
        self.histories: list[list[int]] = []
        self.user_times: list[list[float]] = []
        for u, user in enumerate(split.users):
            seq = [self.vocab[i] for i in split.train[user]]
            stamps = split.train_times.get(user) if split.train_times else None
            # Without times, positions stand in for them (ties never occur then).
            base = stamps[0] if stamps else 0
            self.user_times.append(
                [float(t - base) for t in stamps] if stamps else [float(g) for g in range(len(seq))]
            )
            self.histories.append(seq)
            first: dict[int, int] = {}
            for g, item in enumerate(seq):
                first.setdefault(item, g)
            self.first.append((torch.tensor(list(first), dtype=torch.long),
                               torch.tensor(list(first.values()), dtype=torch.int32)))
            # Windows of at most max_len inputs that together predict every item but the first.
            end = len(seq)
            while end >= 2:
                start = max(0, end - max_len - 1)
                windows.append((u, start, seq[start:end]))
                end = start + 1
        w = len(windows)
        # Whole windows (inputs and the last target), left-padded to max_len + 1.
        self.seq = torch.zeros(w, max_len + 1, dtype=torch.long)
        # float64: seconds since the user's first event exceed float32's integer precision.
        self.times = torch.full((w, max_len + 1), -1.0, dtype=torch.float64)
        self.start = torch.zeros(w, dtype=torch.long)
        self.user = torch.zeros(w, dtype=torch.long)
        self.lengths = torch.zeros(w, dtype=torch.long)  # inputs (= targets) per window
        for row, (u, start, window) in enumerate(windows):
            self.seq[row, max_len + 1 - len(window) :] = torch.tensor(window)
            self.times[row, max_len + 1 - len(window) :] = torch.tensor(
                self.user_times[u][start : start + len(window)], dtype=torch.float64
            )
            self.start[row] = start
            self.user[row] = u
            self.lengths[row] = len(window) - 1
        self.n_targets = int(self.lengths.sum())

    def batch(
        self, rows: torch.Tensor, gen: torch.Generator, time_shuffle_s: float = -1.0
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The (b, width + 1) windows, the global index of each input slot (b, width), and per
        row the consumption key of every item: an item is consumed at input g when key <= g.

        Half of MovieLens-100K's consecutive ratings share a timestamp second, and their order
        is only file order, so reordering them is augmentation, not noise. `time_shuffle_s`
        >= 0 sorts each window by time + U(0, max(s, 0.5)) seconds: 0 swaps exact ties only.
        """
        width = int(self.lengths[rows].max())
        seq = self.seq[rows, -(width + 1) :]
        real = seq != PAD
        if time_shuffle_s >= 0:
            key64 = self.times[rows, -(width + 1) :].clone()
            noise = torch.rand(seq.shape, generator=gen, dtype=torch.float64)
            key64 += noise * max(time_shuffle_s, 0.5)
            key64[~real] = -1e18  # padding stays on the left
            seq = seq.gather(1, key64.argsort(dim=1, stable=True))
        lengths = self.lengths[rows]
        # Slot j of a row holds window position j - (width - m); global index = start + that.
        offset = self.start[rows] - (width - lengths)
        slot = torch.arange(width + 1)
        global_idx = offset[:, None] + slot[None, :]
        keys = torch.full((len(rows), self.n_vocab), 1 << 30, dtype=torch.int32)
        for r, u in enumerate(self.user[rows].tolist()):
            items, first = self.first[u]
            keys[r, items] = first
        # Items of the window are consumed where they now sit (after any shuffle).
        keys.scatter_(1, seq, global_idx.to(keys.dtype))
        return seq, global_idx[:, :-1], keys


def length_buckets(
    lengths: torch.Tensor, batch_size: int, gen: torch.Generator
) -> list[torch.Tensor]:
    """Random batches of similar length: padding is computed for nothing, and histories here
    range from 18 to 200+ items, so sorting by a jittered length halves the work per epoch."""
    jitter = torch.rand(len(lengths), generator=gen) * 40.0
    order = torch.argsort(lengths.float() + jitter)
    batches = list(order.split(batch_size))
    return [batches[i] for i in torch.randperm(len(batches), generator=gen).tolist()]
