"""Sequential interest model: causal transformer over text-grounded items plus item-item memory."""

from __future__ import annotations

import hashlib
import io
import json
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

logger = logging.getLogger(__name__)

CHECKPOINT_FORMAT = "interest-server/sequence-model"
CHECKPOINT_FORMAT_VERSION = 2
"""Highest format this code reads. Version 2 adds the capped item memory: a checkpoint is
written as version 2 only when its memory is capped (more items than memory slots); one whose
memory covers every item is written as version 1, which older servers read unchanged."""
PAD = 0  # vocabulary index 0: padding, and the id slot of items the checkpoint does not know


@dataclass(frozen=True)
class SeqConfig:
    """Architecture of the network; saved in the checkpoint so `load` can rebuild it."""

    text_dim: int = 384
    n_items: int = 0  # known item ids; vocabulary indices run 1..n_items
    dim: int = 64
    n_layers: int = 2
    n_heads: int = 2
    ffn_mult: int = 4
    max_len: int = 200
    # Heavy dropout: 943 users are few, and every lighter setting tried peaked early and fell.
    dropout: float = 0.5
    emb_dropout: float = 0.5
    attn_dropout: float = 0.0  # dropout on attention weights: ~5x slower on CPU when on
    # Tied input/output item vectors halve the per-item parameters; untied ones overfit.
    tied: bool = True
    use_ids: bool = True  # learned per-item vectors on top of the text projection
    positions: bool = True
    # Item-item memory: a learned (items x items) matrix read by the last `memory_k` events,
    # weighted memory_decay**lag. It adds full-rank "seen together" structure that a
    # dim-sized dot product cannot hold. 0 turns it off.
    memory_k: int = 10
    # The memory covers at most this many items (the most frequent in training; the others
    # get a zero memory column and are not read as history), so it holds (C + 1)^2 numbers
    # and the user and item scoring vectors are dim + 1 + min(n_items, C) wide however large
    # the catalog grows. MovieLens-100K's 1,682 items fit whole. 0 turns the memory off.
    memory_items: int = 2048
    memory_decay: float = 0.7
    # Read the memory as W + W^T: "seen together" is mostly symmetric in bursts of ratings
    # whose order is arbitrary, and tying halves what each pair has to learn.
    memory_symmetric: bool = True

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> SeqConfig:
        """Rebuild from a checkpoint, ignoring keys a newer writer may have added."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in raw.items() if k in names})


class _Dropout(nn.Module):
    """Dropout whose masks are slices of a pre-drawn pool of random bytes.

    Drawing fresh random numbers per element dominated a CPU training step (more than the
    matmuls); a random offset into a 16 MiB pool gives masks that differ call to call at a
    small fraction of the cost.
    """

    _POOL_BYTES = 1 << 24
    _pool: torch.Tensor | None = None

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p
        self.threshold = round(p * 256)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.threshold == 0:
            return x
        n = x.numel()
        if n > self._POOL_BYTES:
            bytes_ = torch.randint(0, 256, (n,), dtype=torch.uint8, device=x.device)
        else:
            if _Dropout._pool is None or _Dropout._pool.device != x.device:
                _Dropout._pool = torch.randint(
                    0, 256, (self._POOL_BYTES,), dtype=torch.uint8, device=x.device
                )
            start = int(torch.randint(0, self._POOL_BYTES - n + 1, ()))
            bytes_ = _Dropout._pool[start : start + n]
        keep = (bytes_ >= self.threshold).view(x.shape)
        return torch.where(keep, x * (256.0 / (256 - self.threshold)), 0.0)


class _Block(nn.Module):
    """Pre-norm transformer block (pre-norm trains stably without warm-up at this size)."""

    def __init__(self, cfg: SeqConfig) -> None:
        super().__init__()
        self.n_heads = cfg.n_heads
        self.norm1 = nn.LayerNorm(cfg.dim)
        self.qkv = nn.Linear(cfg.dim, 3 * cfg.dim)
        self.proj = nn.Linear(cfg.dim, cfg.dim)
        self.norm2 = nn.LayerNorm(cfg.dim)
        self.ffn = nn.Sequential(
            nn.Linear(cfg.dim, cfg.ffn_mult * cfg.dim),
            nn.GELU(),
            nn.Linear(cfg.ffn_mult * cfg.dim, cfg.dim),
        )
        self.drop = _Dropout(cfg.dropout)
        self.attn_dropout = cfg.attn_dropout

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(b, n, 3, self.n_heads, d // self.n_heads).unbind(2)
        q, k, v = (t.transpose(1, 2) for t in (q, k, v))
        if self.training and self.attn_dropout > 0:
            # SDPA's own dropout path is very slow on CPU; the explicit form is ~5x faster.
            scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1]) + bias
            weights = F.dropout(torch.softmax(scores, dim=-1), self.attn_dropout)
            attn = weights @ v
        else:
            attn = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
        x = x + self.drop(self.proj(attn.transpose(1, 2).reshape(b, n, d)))
        return x + self.drop(self.ffn(self.norm2(x)))


class SeqRecNet(nn.Module):
    """Item vector = W·text + id embedding; user state = causal transformer over the history.

    The score of item i after a history is `h · out_i + bias_i + sum_lag decay^lag M[x_lag, i]`:
    out/bias are built from the item's text plus learned id parameters, so an item that has
    text but was never seen in training still gets a sensible (text-only) vector; M is the
    item-item memory read by the last `memory_k` events (zero for items it does not know).
    """

    def __init__(self, cfg: SeqConfig) -> None:
        super().__init__()
        self.cfg = cfg
        vocab = cfg.n_items + 1
        self.in_text = nn.Linear(cfg.text_dim, cfg.dim, bias=False)
        self.in_id = nn.Embedding(vocab, cfg.dim, padding_idx=PAD) if cfg.use_ids else None
        self.pos = nn.Embedding(cfg.max_len, cfg.dim) if cfg.positions else None
        self.in_norm = nn.LayerNorm(cfg.dim)
        self.in_drop = _Dropout(cfg.emb_dropout)
        self.blocks = nn.ModuleList(_Block(cfg) for _ in range(cfg.n_layers))
        self.out_norm = nn.LayerNorm(cfg.dim)
        if not cfg.tied:
            self.out_text = nn.Linear(cfg.text_dim, cfg.dim, bias=False)
            self.out_id = nn.Embedding(vocab, cfg.dim, padding_idx=PAD) if cfg.use_ids else None
        # A per-item bias carries popularity, which the dot product alone learns slowly.
        self.bias_text = nn.Linear(cfg.text_dim, 1)
        self.bias_id = nn.Embedding(vocab, 1, padding_idx=PAD) if cfg.use_ids else None
        self.apply(self._init)
        # Row: the history item, column: the scored item, both as memory slots. Zero start: the
        # memory begins silent and learns only what the transformer leaves unexplained.
        # Row/column 0 (padding, unknown items, items without a slot) stay zero.
        slots = self.memory_size
        self.memory = nn.Parameter(torch.zeros(slots + 1, slots + 1)) if slots else None
        if self.memory is not None:
            # A fixed prior added to the learned memory after training (co-occurrence counts
            # of the training sequences, see training.cooccurrence_prior), with its weight.
            self.register_buffer("memory_prior", torch.zeros(slots + 1, slots + 1))
            self.register_buffer("prior_scale", torch.zeros(()))
            # Vocabulary index -> memory slot (0: none). The identity while every item fits,
            # and then not saved (the checkpoint stays version 1); capped, training fills it
            # with set_memory_items and it is saved.
            self.register_buffer("memory_slots", torch.arange(vocab), persistent=self.capped)
            if self.capped:
                self.memory_slots.zero_()

    @staticmethod
    def _init(module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, std=0.02)
            if module.padding_idx is not None:
                with torch.no_grad():
                    module.weight[module.padding_idx].zero_()

    def input_items(self, idx: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        """Input vectors of items (..., dim) from vocabulary indices and text vectors."""
        x = self.in_text(text)
        if self.in_id is not None:
            x = x + self.in_id(idx)
        return x

    def output_items(self, idx: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        """Scoring vectors (..., dim + 1): the last column is the item's bias."""
        if self.cfg.tied:
            vec = self.input_items(idx, text)
        else:
            vec = self.out_text(text)
            if self.out_id is not None:
                vec = vec + self.out_id(idx)
        bias = self.bias_text(text)
        if self.bias_id is not None:
            bias = bias + self.bias_id(idx)
        return torch.cat([vec, bias], dim=-1)

    @property
    def memory_size(self) -> int:
        """Items the memory covers: min(n_items, memory_items), 0 without a memory."""
        if self.cfg.memory_k <= 0:
            return 0
        return max(0, min(self.cfg.n_items, self.cfg.memory_items))

    @property
    def capped(self) -> bool:
        """Whether some known items have no memory slot."""
        return 0 < self.memory_size < self.cfg.n_items

    @property
    def score_dim(self) -> int:
        """Length of user and item scoring vectors: hidden, bias, then the memory's slots."""
        return self.cfg.dim + 1 + self.memory_size

    def set_memory_items(self, items: torch.Tensor) -> None:
        """Give the memory's slots 1..len(items) to these vocabulary indices (most frequent
        first); every other item loses its slot. Only for a capped memory, before training."""
        assert self.memory is not None and len(items) <= self.memory_size
        with torch.no_grad():
            self.memory_slots.zero_()
            self.memory_slots[items] = torch.arange(1, len(items) + 1)
            self.memory_slots[PAD] = 0

    def item_vectors(self, idx: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        """Full scoring vectors (n, score_dim) of items: output vector, bias, memory column."""
        out = self.output_items(idx, text)
        if self.memory is None:
            return out
        full = out.new_empty(len(idx), self.score_dim)
        full[:, : out.shape[1]] = out
        rows = self.memory_matrix()[1:]
        # In slices, so a large catalog's matrix is the only full-size allocation.
        for start in range(0, len(idx), 8192):
            part = idx[start : start + 8192]
            full[start : start + len(part), out.shape[1] :] = self.memory_columns(rows, part).T
        return full

    def memory_columns(self, rows: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        """Columns of the slot-indexed matrix `rows` (..., slots + 1) for vocabulary indices
        `idx`: zero for an item without a slot (padding and unknown ids included)."""
        slot = self.memory_slots[idx]
        return rows[..., slot] * (slot != 0).to(rows.dtype)

    def recency(self, idx: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
        """Sparse (len(rows), memory slots + 1) weights of the last memory_k items before and at
        each selected position (rows[i], cols[i]) of the left-padded index matrix `idx`; items
        without a memory slot weigh nothing."""
        k, n = self.cfg.memory_k, len(rows)
        at = torch.arange(n, device=idx.device)
        r_parts, c_parts, v_parts = [], [], []
        for lag in range(k):
            col = cols - lag
            ok = col >= 0
            items = self.memory_slots[idx[rows[ok], col[ok]]]
            real = items != 0
            r_parts.append(at[ok][real])
            c_parts.append(items[real])
            v_parts.append(torch.full((int(real.sum()),), self.cfg.memory_decay**lag))
        indices = torch.stack([torch.cat(r_parts), torch.cat(c_parts)])
        # Built here from valid indices, so the (costly) invariant check is skipped.
        return torch.sparse_coo_tensor(
            indices, torch.cat(v_parts), (n, self.memory_size + 1), check_invariants=False
        ).coalesce()

    def memory_matrix(self) -> torch.Tensor:
        """The effective (slots + 1, slots + 1) item-item matrix: row history item, column
        scored; with an uncapped memory slot = vocabulary index."""
        assert self.memory is not None
        learned = self.memory + self.memory.T if self.cfg.memory_symmetric else self.memory
        if float(self.prior_scale) == 0.0:
            return learned
        return learned + self.prior_scale * self.memory_prior

    def memory_scores(
        self, recency: torch.Tensor, idx: torch.Tensor | None = None
    ) -> torch.Tensor:
        """(n, len(idx)) item-item scores of sparse recency rows for the items `idx` (default:
        the whole vocabulary). Only the selected columns are computed, so scoring a sample
        of a large catalog costs the sample, not the catalog."""
        matrix = self.memory_matrix()
        if idx is not None:
            return torch.sparse.mm(recency, self.memory_columns(matrix, idx))
        scores = torch.sparse.mm(recency, matrix)
        if not self.capped:  # slot = vocabulary index
            return scores
        return self.memory_columns(scores, torch.arange(self.cfg.n_items + 1))

    def user_vectors(self, hidden: torch.Tensor, recency: torch.Tensor | None) -> torch.Tensor:
        """Scoring vectors (n, score_dim) from last hidden states and dense recency rows."""
        parts = [hidden, torch.ones_like(hidden[..., :1])]
        if self.memory is not None:
            assert recency is not None
            parts.append(recency[..., 1:])
        return torch.cat(parts, dim=-1)

    def encode(self, idx: torch.Tensor, text: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """Hidden states (b, n, dim) of left-padded histories given item indices and texts."""
        return self.encode_vectors(self.input_items(idx, text), valid)

    def encode_vectors(self, x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """Hidden states (b, n, dim) of left-padded input vectors; row j sees items 0..j only.

        Positions are counted back from the end of a `max_len` window (the newest item of a
        full window is position max_len-1), so a history of n items reads the same positions in
        training and at serving, where it is not padded at all.
        """
        n = x.shape[1]
        device = x.device
        if self.pos is not None:
            start = self.cfg.max_len - n
            x = x + self.pos(torch.arange(start, self.cfg.max_len, device=device))
        x = self.in_drop(self.in_norm(x))
        causal = torch.ones(n, n, dtype=torch.bool, device=device).tril()
        # Padding keys are hidden; a padding query sees itself so no row is all -inf (NaN).
        eye = torch.eye(n, dtype=torch.bool, device=device)
        allowed = (causal & valid[:, None, :]) | eye
        # An additive float mask: CPU SDPA runs its fast kernel with it, not with a bool mask.
        bias = torch.zeros(allowed.shape, dtype=x.dtype, device=device)
        bias = bias.masked_fill(~allowed, float("-inf"))[:, None, :, :]
        for block in self.blocks:
            x = block(x, bias)
        return self.out_norm(x)


def user_vectors_from_hidden(hidden: torch.Tensor) -> torch.Tensor:
    """Append the constant 1 that multiplies the bias column of the item matrix."""
    return torch.cat([hidden, torch.ones_like(hidden[..., :1])], dim=-1)


def save_checkpoint(
    path: str | Path,
    net: SeqRecNet,
    item_ids: Sequence[str],
    text_model_id: str,
    metadata: Mapping[str, Any] | None = None,
) -> str:
    """Write one torch.save file (plain tensors, numbers, strings) and return its version."""
    if len(item_ids) != net.cfg.n_items:
        raise ValueError(f"{len(item_ids)} item ids for a network of {net.cfg.n_items} items")
    payload = {
        "format": CHECKPOINT_FORMAT,
        # Version 1 whenever it is one (see CHECKPOINT_FORMAT_VERSION): older servers read it.
        "format_version": 2 if net.capped else 1,
        "config": asdict(net.cfg),
        "state_dict": {k: v.detach().cpu().clone() for k, v in net.state_dict().items()},
        "item_ids": [str(i) for i in item_ids],
        "text_model_id": text_model_id,
        "metadata": dict(metadata or {}),
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Write then rename, so a server loading the path never reads a half-written file.
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    tmp.replace(path)
    return model_version(payload)


def model_version(payload: Mapping[str, Any]) -> str:
    """"seq-" + sha256 of what decides the vectors: config, weights, vocabulary, text model.

    Hashing the content rather than the file keeps the version stable when a checkpoint is
    copied or renamed (torch.save embeds the file name) and when only metadata differs.
    """
    digest = hashlib.sha256()
    head = {k: payload[k] for k in ("config", "item_ids", "text_model_id")}
    digest.update(json.dumps(head, sort_keys=True).encode())
    for name in sorted(payload["state_dict"]):
        tensor = payload["state_dict"][name].detach().cpu().contiguous()
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
        digest.update(tensor.numpy().tobytes())
    return f"seq-{digest.hexdigest()[:12]}"


class SequenceInterestModel:
    """Serving wrapper: numpy in, numpy out, CPU, no gradients.

    `score_i = user_vector(history) · item_matrix[i]`; the bias is folded into the last column.
    """

    def __init__(
        self,
        net: SeqRecNet,
        item_ids: Sequence[str],
        text_model_id: str,
        version: str,
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        self.net = net.eval()
        self.item_ids = list(item_ids)
        self._index = {item_id: i + 1 for i, item_id in enumerate(self.item_ids)}
        self.text_model_id = text_model_id
        self.version = version
        self.metadata = dict(metadata or {})
        self.dim = net.score_dim
        self.max_len = net.cfg.max_len
        self.text_dim = net.cfg.text_dim

    @classmethod
    def load(cls, source: str | Path | bytes) -> SequenceInterestModel:
        """Load a checkpoint written by `save_checkpoint`, from a file or from its bytes (a
        published blob). weights_only: an unpickler that builds tensors and plain containers
        and refuses any other global, so no code in the checkpoint runs."""
        name = "the checkpoint bytes" if isinstance(source, bytes) else str(source)
        raw = torch.load(io.BytesIO(source) if isinstance(source, bytes) else Path(source),
                         map_location="cpu", weights_only=True)
        if not isinstance(raw, dict) or raw.get("format") != CHECKPOINT_FORMAT:
            raise ValueError(f"{name} is not a sequence-model checkpoint")
        if int(raw.get("format_version", 0)) > CHECKPOINT_FORMAT_VERSION:
            raise ValueError(
                f"{name} has checkpoint format {raw['format_version']}; "
                f"this server reads up to {CHECKPOINT_FORMAT_VERSION}"
            )
        config = dict(raw["config"])
        # Version 1 predates the cap: its memory covers every item.
        config.setdefault("memory_items", config.get("n_items", 0))
        net = SeqRecNet(SeqConfig.from_dict(config))
        net.load_state_dict(raw["state_dict"])
        version = model_version(raw)
        logger.info("sequence model %s loaded from %s (%d items, dim %d, max_len %d)",
                    version, name, net.cfg.n_items, net.score_dim, net.cfg.max_len)
        return cls(net, raw["item_ids"], raw["text_model_id"], version, raw["metadata"])

    def _indices(self, item_ids: Sequence[str]) -> torch.Tensor:
        return torch.tensor([self._index.get(str(i), PAD) for i in item_ids], dtype=torch.long)

    def _text(self, vectors: np.ndarray, n: int) -> torch.Tensor:
        arr = np.asarray(vectors, dtype=np.float32)
        if arr.shape != (n, self.text_dim):
            raise ValueError(
                f"text vectors have shape {arr.shape}, expected ({n}, {self.text_dim})"
            )
        return torch.from_numpy(np.ascontiguousarray(arr))

    def item_matrix(self, item_ids: Sequence[str], text_vectors: np.ndarray) -> np.ndarray:
        """Scoring vectors (n, dim) float32; ids the checkpoint does not know use text only."""
        text = self._text(text_vectors, len(item_ids))
        with torch.inference_mode():
            out = self.net.item_vectors(self._indices(item_ids), text)
        return out.numpy().astype(np.float32, copy=False)

    def prior_vector(self) -> np.ndarray:
        """A user vector that scores items by their learned bias alone (no history)."""
        vec = np.zeros(self.dim, dtype=np.float32)
        vec[self.net.cfg.dim] = 1.0
        return vec

    def user_vector(
        self, history_item_ids: Sequence[str], history_text_vectors: np.ndarray
    ) -> np.ndarray | None:
        """The (dim,) float32 vector of a history given oldest to newest; None when it is empty.

        Only the newest `max_len` events are read, so the work per call is bounded by the
        window the server keeps, however long the user's history is.
        """
        n = len(history_item_ids)
        if n == 0:
            return None
        text = self._text(history_text_vectors, n)[-self.max_len :]
        idx = self._indices(list(history_item_ids)[-self.max_len :])
        with torch.inference_mode():
            valid = torch.ones(1, len(idx), dtype=torch.bool)
            hidden = self.net.encode(idx[None], text[None], valid)[0, -1]
            recency = None
            if self.net.memory is not None:
                rows = torch.zeros(1, dtype=torch.long)
                cols = torch.tensor([len(idx) - 1])
                recency = self.net.recency(idx[None], rows, cols).to_dense()[0]
            vec = self.net.user_vectors(hidden, recency)
        return vec.numpy().astype(np.float32, copy=False)


def param_count(net: nn.Module) -> int:
    """Trainable parameters, for the training log."""
    return sum(p.numel() for p in net.parameters() if p.requires_grad)
