"""A dataset as training sequences: the item vocabulary, its text vectors, the protocol's split."""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from interest_server.offline.movielens import MovieLens, user_sequences
from interest_server.offline.protocol import leave_one_out
from interest_server.recommend.item_index import embedding_text


@dataclass
class SplitData:
    """Leave-one-out view of a dataset: training histories (oldest first) and the two targets."""

    item_ids: list[str]  # vocabulary order; vocabulary index = position + 1
    text: np.ndarray  # (n_items, text_dim) text vectors in vocabulary order
    text_model_id: str
    users: list[str]
    train: dict[str, list[str]]
    valid: dict[str, str]
    test: dict[str, str]
    # Event times (seconds) of the training histories; optional, used only for augmentation.
    train_times: dict[str, list[int]] | None = None


def item_text(movie: Any) -> str:
    """Exactly the text the server embeds for a MovieLens item upserted with its attributes."""
    attrs = {k: tuple(v) for k, v in movie.attributes().items()}
    return embedding_text(movie.text(), attrs)


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


def split_data(
    data: MovieLens, text: np.ndarray | None = None, text_model_id: str = ""
) -> SplitData:
    """The protocol's split (`protocol.leave_one_out`) as item ids over a vocabulary: the
    catalog, then any item only the interactions name. Users in (len, id) order, so numeric
    ids sort numerically; the history keeps the exact-time order of the events."""
    split = leave_one_out(data)
    item_ids = [m.item_id for m in data.movies]
    known = set(item_ids)
    for events in user_sequences(data.interactions).values():
        for event in events:
            if event.item_id not in known:  # an interaction on an item the catalog lacks
                known.add(event.item_id)
                item_ids.append(event.item_id)
    if text is None:
        texts = [item_text(m) for m in data.movies] + [""] * (len(item_ids) - len(data.movies))
        text, text_model_id = embed_items(texts)
    users = sorted(split.train, key=lambda u: (len(u), u))
    return SplitData(
        item_ids=item_ids,
        text=np.asarray(text, dtype=np.float32),
        text_model_id=text_model_id,
        users=users,
        train={u: [e.item_id for e in split.train[u]] for u in users},
        valid={u: split.valid[u].item_id for u in users},
        test={u: split.test[u].item_id for u in users},
        train_times={u: [e.timestamp for e in split.train[u]] for u in users},
    )
