"""Pooling token states into one unit vector per text: mean, attention, or both at once."""

from __future__ import annotations

from collections.abc import Callable

import torch

Pool = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
"""(token states, attention mask, special-tokens mask) -> pooled (batch, dim), or (batch, k, dim)
for k poolings of the same pass (each vector is normalised on its own)."""


def mean_pool(states: torch.Tensor, attention_mask: torch.Tensor,
              special: torch.Tensor) -> torch.Tensor:
    """(batch, dim): the mean of the token states over the attention mask."""
    del special  # the model was trained with [CLS]/[SEP] inside the mean
    mask = attention_mask.unsqueeze(-1).to(states.dtype)
    return (states * mask).sum(1) / mask.sum(1).clamp(min=1e-9)


def attention_pool(states: torch.Tensor, attention_mask: torch.Tensor,
                   special: torch.Tensor) -> torch.Tensor:
    """(batch, dim): the real tokens' states weighted by softmax(w_t . q / sqrt(dim)), where the
    query q is the mean-pooled state (TextEncoder.embed_concepts says why)."""
    query = mean_pool(states, attention_mask, special)  # (b, d): the item-space vector
    real = attention_mask.bool() & ~special.bool()
    # A phrase with no real tokens (empty string) falls back to its mean-pooled state.
    empty = ~real.any(dim=1)
    scores = torch.einsum("btd,bd->bt", states, query) / (states.shape[-1] ** 0.5)
    scores = scores.masked_fill(~real, float("-inf"))
    scores[empty] = 0.0
    weights = torch.softmax(scores, dim=1)
    pooled = torch.einsum("bt,btd->bd", weights, states)
    return torch.where(empty.unsqueeze(-1), query, pooled)


def both_pool(states: torch.Tensor, attention_mask: torch.Tensor,
              special: torch.Tensor) -> torch.Tensor:
    """(batch, 2, dim): attention pooling, then mean pooling, of the same token states."""
    mean = mean_pool(states, attention_mask, special)
    return torch.stack([attention_pool(states, attention_mask, special), mean], dim=1)


def normalise(pooled: torch.Tensor) -> torch.Tensor:
    """Each vector (last axis) scaled to unit length."""
    # Unit length, so a dot product between any two stored vectors is their cosine.
    return torch.nn.functional.normalize(pooled, p=2, dim=-1)
