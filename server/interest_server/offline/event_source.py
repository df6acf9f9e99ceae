"""The trainer's generic input: who did what when (events) and what each item is (catalog).

Every source ends here: an event file in a layout `interest-server import` reads, the server's
own event log in Redis, or a dataset through its adapter (MovieLens: `movielens.training_input`).
The trainer sees only `TrainingInput`; it knows no dataset.
"""

from __future__ import annotations

import csv
import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from interest_server.events import EventType
from interest_server.model.learned_interest import SEQUENCE_TYPES
from interest_server.offline.import_formats import ImportFileError, build_event, detect_layout
from interest_server.recommend.item_index import embedding_text
from interest_server.state.keys import KeySpace

logger = logging.getLogger(__name__)

JSONL_SUFFIXES = (".jsonl", ".ndjson")
CATALOG_HELP = (
    "item texts are needed to train (the model reads each item's text vector, as the server "
    "does): give --catalog FILE (JSONL, one {\"item_id\", \"text\", \"attributes\"} per line as "
    "`interest-client upsert-items` reads, or a RecBole *.item / GroupLens u.item file as "
    "`interest-server import --items` reads), or --redis-url for the catalog a server stores")


@dataclass(frozen=True, slots=True)
class TrainEvent:
    """One interaction: timestamp in milliseconds; `type` is an interest.v1.EventType number."""

    user_id: str
    item_id: str
    timestamp_ms: int
    type: int = EventType.RATING
    value: float | None = None


@dataclass
class ItemCatalog:
    """Item ids with the text each is embedded from; `vectors` when they are already known
    (the catalog stored in Redis), in id order, made by the encoder `text_model_id`."""

    item_ids: list[str]
    texts: list[str]
    vectors: np.ndarray | None = None
    text_model_id: str = ""


@dataclass
class TrainingInput:
    """Events (any order) and the catalog; `targets` fixes some users' held-out pair
    (user -> (validation item, test item, training events expected)), as a dataset's published
    split does; `source` says where it all came from (saved in the checkpoint)."""

    events: list[TrainEvent]
    catalog: ItemCatalog
    source: str
    targets: dict[str, tuple[str, str, int]] | None = field(default=None)


def sequence_events(events: Iterable[TrainEvent]) -> list[TrainEvent]:
    """The interactions a learned model reads (views, clicks, likes, purchases, ratings), as
    the server feeds it (model/learned_interest.py): dislikes and skips are left out."""
    return [e for e in events if e.type in SEQUENCE_TYPES]


def read_events_file(path: str | Path, *, delimiter: str | None = None,
                     event_type: str | None = None) -> list[TrainEvent]:
    """Events of a CSV/TSV file in the layouts `interest-server import` reads (RecBole .inter,
    GroupLens u.data, a header with user_id, item_id[, type][, value][, timestamp]) or a JSONL
    file of event objects as `interest-client send-file` reads. Rows without a time take their
    line number, so file order stands in for time; a file mixing both is refused."""
    path = Path(path)
    if not path.is_file():
        raise ImportFileError(f"no events file {path}")
    if path.suffix.lower() in JSONL_SUFFIXES:
        rows = _jsonl_events(path)
    else:
        layout = detect_layout(path, delimiter=delimiter, event_type=event_type)
        types: dict[str, int] = {}
        rows = []
        with path.open(encoding="utf-8-sig", newline="") as handle:
            reader = csv.reader(handle, delimiter=layout.delimiter)
            if layout.header:
                next(reader, None)
            for row in reader:
                if not "".join(row).strip():
                    continue
                try:
                    event = build_event(row, reader.line_num, layout, path.name, types)
                except ValueError as err:
                    raise ImportFileError(f"{path}:{reader.line_num}: {err}") from None
                rows.append((reader.line_num, event))
    untimed = sum(1 for _, e in rows if not e.timestamp_ms)
    if untimed and untimed != len(rows):
        raise ImportFileError(f"{path}: {untimed} of {len(rows)} events have no timestamp; "
                              "give every event a time, or none (file order is then the time)")
    return [TrainEvent(e.user_id, e.item_id, e.timestamp_ms or line, e.type,
                       e.value if e.HasField("value") else None) for line, e in rows]


def _jsonl_events(path: Path) -> list[tuple[int, Any]]:
    from interest_client.client import make_event

    rows = []
    for line, obj in _jsonl(path):
        try:
            rows.append((line, make_event(**obj)))
        except (TypeError, ValueError) as err:
            raise ImportFileError(f"{path}:{line}: {err}") from None
    return rows


def _jsonl(path: Path) -> Iterable[tuple[int, dict[str, Any]]]:
    with path.open(encoding="utf-8") as handle:
        for line, text in enumerate(handle, 1):
            if not text.strip():
                continue
            try:
                obj = json.loads(text)
            except json.JSONDecodeError as err:
                raise ImportFileError(f"{path}:{line}: invalid JSON: {err}") from None
            if not isinstance(obj, dict):
                raise ImportFileError(f"{path}:{line}: expected a JSON object")
            yield line, obj


def read_catalog_file(path: str | Path) -> ItemCatalog:
    """Item texts from a JSONL file of {"item_id", "text", "attributes": {name: [values]}}
    (what UpsertItems takes) or a RecBole *.item / GroupLens u.item file; each item's text is
    the one the server embeds (its text plus the attribute values it does not mention)."""
    path = Path(path)
    if not path.is_file():
        raise ImportFileError(f"no catalog file {path}")
    if path.suffix.lower() in JSONL_SUFFIXES:
        items = [obj for _, obj in _jsonl(path)]
    else:
        from interest_server.offline.bulk_import import _catalog

        items = _catalog(path)
    ids, texts = [], []
    for n, item in enumerate(items, 1):
        if not str(item.get("item_id", "")).strip():
            raise ImportFileError(f"{path}: item {n} has no item_id")
        attrs = item.get("attributes") or {}
        attrs = {k: tuple([v] if isinstance(v, str) else v) for k, v in attrs.items()}
        ids.append(str(item["item_id"]))
        texts.append(embedding_text(str(item.get("text", "")), attrs))
    if not ids:
        raise ImportFileError(f"{path}: no items")
    return ItemCatalog(ids, texts)


def read_redis_catalog(client: Any, keys: KeySpace) -> ItemCatalog:
    """The catalog a server stores (state/catalog.py): texts and, when every item was embedded
    by the same encoder, its vectors (so nothing is embedded again)."""
    from interest_server.state.catalog import CatalogStore

    items = sorted((i for batch in CatalogStore(client, 0, keys).iter_all() for i in batch),
                   key=lambda i: (len(i.item_id), i.item_id))
    if not items:
        raise ImportFileError(f"the catalog of tenant {keys.tenant!r} in Redis is empty; "
                              "upsert the items (UpsertItems) before training")
    catalog = ItemCatalog([i.item_id for i in items],
                          [embedding_text(i.text, i.attributes) for i in items])
    models = {i.model for i in items}
    if len(models) == 1 and "" not in models:
        catalog.vectors = np.stack([i.vector for i in items]).astype(np.float32)
        catalog.text_model_id = models.pop()
    else:  # mixed encoders: the texts are embedded again here, all by one model
        logger.warning("catalog vectors come from %d encoders; re-embedding the texts",
                       len(models))
    return catalog


def read_redis_events(client: Any, keys: KeySpace, *, cluster: bool) -> list[TrainEvent]:
    """Every event of the tenant's event log (state/event_log.py)."""
    from interest_server.state.event_log import read_event_log

    return [TrainEvent(e.user_id, e.item_id, int(e.timestamp_ms), int(e.type),
                       None if e.value is None else float(e.value))
            for e in read_event_log(client, keys, cluster=cluster)]


def catalog_vectors(catalog: ItemCatalog, item_ids: list[str]) -> tuple[np.ndarray, str]:
    """Text vectors of `item_ids` (catalog items first, then ids only events name, embedded
    from "" as before) and the encoder's id: the stored vectors when the catalog has them."""
    from interest_server.offline.sequences import embed_items

    extra = len(item_ids) - len(catalog.item_ids)
    if catalog.vectors is not None:
        if extra:
            empty, _ = embed_items([""])
            return np.vstack([catalog.vectors, np.repeat(empty, extra, axis=0)]), \
                catalog.text_model_id
        return catalog.vectors, catalog.text_model_id
    return embed_items(catalog.texts + [""] * extra)
