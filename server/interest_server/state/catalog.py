"""The catalog in Redis (item hashes + a change stream) and the follower that mirrors it."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterator, Sequence

import numpy as np
import redis

from interest_server.recommend.item_index import CatalogItem, ItemIndex, embedding_text
from interest_server.state.keys import DEFAULT_KEYS, KeySpace
from interest_server.state.model_registry import MODEL_OP
from interest_server.state.redis_conn import REDIS_ERRORS
from interest_server.state.synonyms import SYNONYMS_OP
from interest_server.state.user_store import now_ms, pack_vector, unpack_vector

log = logging.getLogger(__name__)


class CatalogStore:
    """Items live in Redis as hashes; every change is also appended to a stream so each server
    process can keep its in-memory index current without polling the whole catalog."""

    def __init__(self, client: redis.Redis, stream_maxlen: int,
                 keys: KeySpace = DEFAULT_KEYS) -> None:
        self.redis = client
        self.keys = keys
        self.stream_maxlen = stream_maxlen

    def upsert(self, items: Sequence[CatalogItem]) -> None:
        """Store items and announce them on the change stream."""
        if not items:
            return
        pipe = self.redis.pipeline(transaction=False)
        stamp = now_ms()
        for item in items:
            pipe.hset(self.keys.item(item.item_id), mapping={
                "text": item.text,
                "attrs": json.dumps({k: list(v) for k, v in item.attributes.items()}),
                "vec": pack_vector(item.vector),
                "m": item.model,
                "u": stamp,
            })
            pipe.sadd(self.keys.catalog_ids, item.item_id)
        pipe.execute()
        # The stream entry goes after the hashes are written, in its own round trip: on a Redis
        # Cluster one pipeline's commands run on several nodes in no particular order, and a
        # follower that sees the entry must find the hashes.
        self.redis.xadd(self.keys.catalog_changes,
                        {"op": "upsert", "ids": json.dumps([i.item_id for i in items])},
                        maxlen=self.stream_maxlen, approximate=True)

    def delete(self, item_ids: Sequence[str]) -> int:
        """Remove items; returns how many existed."""
        pipe = self.redis.pipeline(transaction=False)
        for item_id in item_ids:
            pipe.delete(self.keys.item(item_id))
        pipe.srem(self.keys.catalog_ids, *item_ids)
        replies = pipe.execute()
        self.redis.xadd(self.keys.catalog_changes,  # after the deletes, as in upsert()
                        {"op": "delete", "ids": json.dumps(list(item_ids))},
                        maxlen=self.stream_maxlen, approximate=True)
        return int(sum(replies[: len(item_ids)]))

    def fetch(self, item_ids: Sequence[str]) -> list[CatalogItem | None]:
        """Read items by id; None for ids not stored."""
        pipe = self.redis.pipeline(transaction=False)
        for item_id in item_ids:
            pipe.hgetall(self.keys.item(item_id))
        return [_decode(item_id, raw) for item_id, raw in zip(item_ids, pipe.execute(),
                                                              strict=True)]

    def iter_all(self, batch: int = 1000) -> Iterator[list[CatalogItem]]:
        """Every stored item, in batches."""
        ids: list[str] = []
        for raw in self.redis.sscan_iter(self.keys.catalog_ids, count=batch):
            ids.append(raw.decode())
            if len(ids) >= batch:
                yield [i for i in self.fetch(ids) if i is not None]
                ids = []
        if ids:
            yield [i for i in self.fetch(ids) if i is not None]

    def last_change_id(self) -> str:
        """The id of the newest change-stream entry ("0-0" when empty)."""
        newest = self.redis.xrevrange(self.keys.catalog_changes, count=1)
        return newest[0][0].decode() if newest else "0-0"

    def read_changes(self, after: str, block_ms: int) -> list[tuple[str, str, list[str]]]:
        """Changes after an entry id: (entry id, op, item ids); blocks up to block_ms."""
        reply = self.redis.xread({self.keys.catalog_changes: after}, count=500, block=block_ms)
        out = []
        for _stream, entries in reply or []:
            for entry_id, fields in entries:
                out.append((entry_id.decode(), fields[b"op"].decode(),
                            json.loads(fields[b"ids"])))
        return out

    def size(self) -> int:
        """Number of stored items."""
        return int(self.redis.scard(self.keys.catalog_ids))


def _decode(item_id: str, raw: dict[bytes, bytes]) -> CatalogItem | None:
    if not raw or b"vec" not in raw:
        return None
    attrs = json.loads(raw.get(b"attrs", b"{}"))
    vector = unpack_vector(raw[b"vec"])
    assert vector is not None
    return CatalogItem(item_id=item_id, text=raw.get(b"text", b"").decode(),
                       attributes={k: tuple(v) for k, v in attrs.items()}, vector=vector,
                       model=raw.get(b"m", b"").decode())


class CatalogFollower:
    """Loads the catalog into the index at start, then applies the change stream as it grows.

    Items embedded by another model are re-embedded so every vector in the index lives in the
    current model's space. At load they are also written back: that is how a catalog moves to
    a new encoder, once, when the first process running it starts. Items of another model that
    arrive on the change stream are re-embedded in memory only: they were written by a live
    replica running another encoder, and writing them back would make that replica re-embed
    and write them back in turn, for ever. Such a replica is logged as a warning, once per
    model id (docs/models.md, "Replicas with different encoders").
    """

    def __init__(self, store: CatalogStore, index: ItemIndex, model_id: str,
                 embed: Callable[[list[str]], np.ndarray], block_ms: int = 1000,
                 on_synonyms: Callable[[], None] | None = None,
                 on_model: Callable[[], None] | None = None) -> None:
        """`on_synonyms()` is called for each `synonyms` entry of the stream (state/synonyms.py:
        the tenant's attribute synonyms changed), `on_model()` for each `model` entry
        (state/model_registry.py: the published interest model changed); both must return
        quickly, the follower's thread calls them."""
        self.store = store
        self.on_synonyms = on_synonyms
        self.on_model = on_model
        self.index = index
        self.model_id = model_id
        self.embed = embed
        self.block_ms = block_ms
        self._cursor = "0-0"
        self._foreign_models: set[str] = set()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.loaded = threading.Event()

    def load(self) -> int:
        """Mirror the whole catalog; returns the number of items loaded."""
        # Take the cursor first: a change made during the load is then replayed, never missed.
        self._cursor = self.store.last_change_id()
        count = 0
        for batch in self.store.iter_all():
            self.index.upsert(self.current_model(batch, write_back=True))
            count += len(batch)
        self.loaded.set()
        log.info("catalog loaded: %d items", count)
        return count

    def current_model(self, items: list[CatalogItem],
                      write_back: bool = False) -> list[CatalogItem]:
        """The items with vectors of this process's model: those stored by another model are
        re-embedded (and, with write_back, stored again under this model's id)."""
        stale = [i for i in items if i.model != self.model_id]
        if not stale:
            return items
        if write_back:
            log.info("re-embedding %d items made by another model", len(stale))
        else:
            self._warn_foreign({i.model for i in stale})
        vectors = self.embed([embedding_text(i.text, i.attributes) for i in stale])
        fresh = {i.item_id: CatalogItem(i.item_id, i.text, i.attributes, v, self.model_id)
                 for i, v in zip(stale, vectors, strict=True)}
        if write_back:
            self.store.upsert(list(fresh.values()))
        return [fresh.get(i.item_id, i) for i in items]

    def _warn_foreign(self, models: set[str]) -> None:
        for model in sorted(models - self._foreign_models):
            log.warning(
                "another process writes this catalog with encoder %s, but this one runs %s: "
                "its items are re-embedded here, in memory only. Run every replica of a "
                "tenant with the same --model-dir; until then, each catalog write is embedded "
                "once per encoder", model or "(none)", self.model_id)
        self._foreign_models |= models

    def poll_once(self, block_ms: int | None = None) -> int:
        """Apply the changes that arrived since the last poll; returns how many entries."""
        changes = self.store.read_changes(self._cursor, self.block_ms if block_ms is None
                                          else block_ms)
        for entry_id, op, item_ids in changes:
            if op == SYNONYMS_OP:
                if self.on_synonyms is not None:
                    self.on_synonyms()
            elif op == MODEL_OP:
                if self.on_model is not None:
                    self.on_model()
            elif op == "delete":
                self.index.delete(item_ids)
            else:
                items = self.store.fetch(item_ids)
                self.index.delete([i for i, item in zip(item_ids, items, strict=True)
                                   if item is None])
                self.index.upsert(self.current_model([i for i in items if i is not None]))
            self._cursor = entry_id
        return len(changes)

    def start(self) -> None:
        """Follow the stream in a daemon thread."""
        self._thread = threading.Thread(target=self._run, name="catalog-follower", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.poll_once()
            except REDIS_ERRORS as exc:
                log.warning("catalog follower: %s; retrying", exc.__class__.__name__)
                self._stop.wait(0.5)
            except Exception:
                log.exception("catalog follower failed to apply an entry; retrying it")
                self._stop.wait(0.5)

    def stop(self) -> None:
        """Stop following (returns within one block interval)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.block_ms / 1000 + 2)
