"""In-memory item index: the catalog's vectors as one matrix, attributes as posting lists."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from interest_server.model.concepts import AttrPair
from interest_server.recommend.scan import SCAN_MIN_ITEMS, Scanner, build_scanner

log = logging.getLogger(__name__)

REBUILD_QUIET_S = 0.5
"""A background rebuild waits until writes pause this long (a bulk load then builds once)..."""
REBUILD_MAX_WAIT_S = 30.0
"""...but no longer than this under a steady stream of writes."""


@dataclass(frozen=True)
class CatalogItem:
    """One catalog item as stored in Redis and held in the index."""

    item_id: str
    text: str
    attributes: dict[str, tuple[str, ...]]
    vector: np.ndarray
    model: str


def embedding_text(text: str, attributes: dict[str, tuple[str, ...]]) -> str:
    """The text an item is embedded from: its own text plus the attribute values it does not
    already mention (so "Vertigo" with genre Mystery is embedded as "Vertigo. genre: Mystery",
    while a MovieLens text that lists its genres is left as it is)."""
    lowered = text.lower()
    extra = []
    for name, values in attributes.items():
        missing = [v for v in values if v.lower() not in lowered]
        if missing:
            extra.append(f"{name}: {', '.join(missing)}")
    return ". ".join([text.rstrip(". "), *extra]) if extra else text


@dataclass(frozen=True)
class IndexView:
    """A consistent read view: rows [0, n) of the matrix, with a liveness mask."""

    vectors: np.ndarray
    alive: np.ndarray
    ids: Sequence[str]
    n: int
    generation: int
    behaviour_vectors: np.ndarray | None = None
    """Rows [0, n) of the interest model's own item matrix, when it has one."""
    scanner: Scanner | None = None
    """A quantised snapshot of rows [0, scanner.rows) of this generation, when one is built."""
    delta: np.ndarray | None = None
    """Rows the scanner does not know as they are now (written after its snapshot): always
    re-scored exactly. Sorted; set whenever `scanner` is."""
    behaviour_model: object | None = None
    """The interest function `behaviour_vectors` belong to (opaque here): a reader scores with
    this one, so it never pairs one model's user vector with another model's item matrix."""


class StaleView(Exception):
    """The index was compacted after the view was taken; take a new view and retry."""


class ItemIndex:
    """Rows are appended and overwritten in place and deleted by tombstone, so a reader holding
    an IndexView keeps a valid matrix without copying it; growth and compaction swap in new
    arrays. Attribute values are embedded once into a vocabulary used to ground concepts.

    From `scan_min_items` live items on, a quantised scanner (scan.py) over a snapshot of the
    rows lets the ranker score a shortlist instead of the whole matrix: certified int8 (results
    equal to the fp32 scan) below `ann_min_items`, PQ fast-scan (approximate) from there on.
    Rows written after the snapshot form the view's `delta`, always scored exactly; the scanner
    is rebuilt in the background once the delta grows or the index is compacted."""

    def __init__(self, dim: int, embed_values: Callable[[list[str]], np.ndarray] | None = None,
                 initial_capacity: int = 1024,
                 behaviour_embed: Callable[[list[str], np.ndarray], np.ndarray] | None = None,
                 behaviour_dim: int = 0, ann_min_items: int = 200_000,
                 scan_min_items: int = SCAN_MIN_ITEMS, background: bool = True,
                 behaviour_model: object | None = None) -> None:
        """`behaviour_embed(ids, text_vectors)` maps items into an interest model's own scoring
        space (kept as a second matrix); None when behaviour is scored on text vectors.
        `behaviour_model` is handed to readers with the matrix (IndexView.behaviour_model);
        set_behaviour() replaces all three at once.
        `background=False` leaves scanner builds to explicit `build_scanner()` calls."""
        self.dim = dim
        self.ann_min_items = ann_min_items
        self.scan_min_items = scan_min_items
        self._background = background
        self._scanner: Scanner | None = None
        self._dirty: set[int] = set()  # scanner rows overwritten since its snapshot
        self._dirty_rows: np.ndarray | None = None  # sorted copy, rebuilt after a change
        self._build_dirty: set[int] | None = None  # rows overwritten while a build runs
        self._build_lock = threading.Lock()
        self._builder: threading.Thread | None = None
        self._last_write = 0.0
        self._embed_values = embed_values
        self._behaviour_embed = behaviour_embed
        self._behaviour_dim = behaviour_dim if behaviour_embed is not None else 0
        self._behaviour_model = behaviour_model
        self._behaviour_dirty: set[int] | None = None  # rows written while set_behaviour runs
        self._lock = threading.RLock()
        self._vectors = np.zeros((initial_capacity, dim), dtype=np.float32)
        self._behaviour = np.zeros((initial_capacity, self._behaviour_dim), dtype=np.float32)
        self._alive = np.zeros(initial_capacity, dtype=bool)
        self._ids: list[str] = []
        self._row: dict[str, int] = {}
        self._texts: list[str] = []
        self._attrs: list[dict[str, tuple[str, ...]]] = []
        # Attribute postings. A (name, value) pair keeps a set of rows (cheap to update) and, once
        # read, a sorted row array, dropped whenever the set changes and rebuilt on the next read.
        # A name keeps a bool mask over all matrix rows, set and cleared in place as rows change.
        # A request then only ORs a few arrays. Pairs stay sparse on purpose: a mask per value
        # would cost (values x rows) bytes, too much for ids, brands or years in a big catalog.
        self._postings: dict[AttrPair, set[int]] = {}
        self._posting_rows: dict[AttrPair, np.ndarray] = {}
        self._has_attr: dict[str, np.ndarray] = {}
        self._vocab: dict[AttrPair, np.ndarray] = {}
        self._dead = 0
        self._generation = 0

    # ---- writes -------------------------------------------------------------------------

    def upsert(self, items: Iterable[CatalogItem]) -> None:
        """Insert or replace items (by id)."""
        items = list(items)
        self._extend_vocabulary(items)
        behaviour = None
        embed = self._behaviour_embed
        if embed is not None and items:
            # Computed outside the lock, like the vocabulary: readers must not wait for a model.
            behaviour = embed([i.item_id for i in items], np.stack([i.vector for i in items]))
        with self._lock:
            if self._behaviour_embed is not embed:  # set_behaviour() swapped the model since
                embed = self._behaviour_embed
                behaviour = None if embed is None or not items else embed(
                    [i.item_id for i in items], np.stack([i.vector for i in items]))
            for n, item in enumerate(items):
                row = self._row.get(item.item_id)
                if row is None:
                    row = len(self._ids)
                    self._ensure_capacity(row + 1)
                    self._ids.append(item.item_id)
                    self._texts.append("")
                    self._attrs.append({})
                    self._row[item.item_id] = row
                else:
                    self._unpost(row)
                    self._mark_dirty(row)
                self._vectors[row] = item.vector
                if behaviour is not None:
                    self._behaviour[row] = behaviour[n]
                if self._behaviour_dirty is not None:
                    self._behaviour_dirty.add(row)
                self._texts[row] = item.text
                self._attrs[row] = dict(item.attributes)
                self._post(row)
                self._alive[row] = True
        self._maybe_rebuild()

    def delete(self, item_ids: Iterable[str]) -> int:
        """Remove items; returns how many were present."""
        removed = 0
        with self._lock:
            for item_id in item_ids:
                row = self._row.pop(item_id, None)
                if row is None:
                    continue
                self._unpost(row)
                self._alive[row] = False
                self._attrs[row] = {}
                self._dead += 1
                removed += 1
            if self._dead > 1024 and self._dead > len(self._ids) // 4:
                self._compact()
        self._maybe_rebuild()
        return removed

    def set_behaviour(self, embed: Callable[[list[str], np.ndarray], np.ndarray] | None,
                      dim: int, model: object) -> None:
        """Replace the interest model's item matrix (None: behaviour is scored on text vectors)
        and the model readers get with it, for the whole catalog, atomically for readers: a
        view has either the old model and matrix or the new ones. The matrix is computed
        outside the lock (readers and writers go on meanwhile); rows written in that time are
        recomputed under the lock before the swap."""
        dim = dim if embed is not None else 0
        while True:
            with self._lock:
                n, generation = len(self._ids), self._generation
                ids = list(self._ids[:n])
                alive = self._alive[:n].copy()
                vectors = self._vectors[:n].copy()
                self._behaviour_dirty = set()
            matrix = np.zeros((n, dim), dtype=np.float32)
            rows = np.flatnonzero(alive)
            if embed is not None and len(rows):
                matrix[rows] = embed([ids[r] for r in rows], vectors[rows])
            with self._lock:
                if generation != self._generation:  # compacted meanwhile: rows renumbered
                    continue
                redo = sorted({r for r in self._behaviour_dirty or () if r < n}
                              | set(range(n, len(self._ids))))
                self._behaviour_dirty = None
                behaviour = np.zeros((len(self._vectors), dim), dtype=np.float32)
                behaviour[:n] = matrix
                redo = [r for r in redo if self._alive[r]]
                if embed is not None and redo:
                    behaviour[redo] = embed([self._ids[r] for r in redo], self._vectors[redo])
                # A new array, not writes into the old one: views taken before keep theirs.
                self._behaviour, self._behaviour_dim = behaviour, dim
                self._behaviour_embed, self._behaviour_model = embed, model
                return

    @property
    def behaviour_model(self) -> object | None:
        """The interest function the current item matrix belongs to."""
        with self._lock:
            return self._behaviour_model

    def _ensure_capacity(self, rows: int) -> None:
        if rows <= len(self._vectors):
            return
        capacity = max(rows, 2 * len(self._vectors))
        vectors = np.zeros((capacity, self.dim), dtype=np.float32)
        vectors[: len(self._ids)] = self._vectors[: len(self._ids)]
        behaviour = np.zeros((capacity, self._behaviour_dim), dtype=np.float32)
        behaviour[: len(self._ids)] = self._behaviour[: len(self._ids)]
        alive = np.zeros(capacity, dtype=bool)
        alive[: len(self._ids)] = self._alive[: len(self._ids)]
        self._vectors, self._behaviour, self._alive = vectors, behaviour, alive
        for name, mask in self._has_attr.items():
            grown = np.zeros(capacity, dtype=bool)
            grown[: len(self._ids)] = mask[: len(self._ids)]
            self._has_attr[name] = grown

    def _compact(self) -> None:
        keep = [r for r in range(len(self._ids)) if self._alive[r]]
        vectors = np.zeros((max(len(keep), 1024), self.dim), dtype=np.float32)
        vectors[: len(keep)] = self._vectors[keep]
        behaviour = np.zeros((len(vectors), self._behaviour_dim), dtype=np.float32)
        behaviour[: len(keep)] = self._behaviour[keep]
        self._behaviour = behaviour
        alive = np.zeros(len(vectors), dtype=bool)
        alive[: len(keep)] = True
        self._ids = [self._ids[r] for r in keep]
        self._texts = [self._texts[r] for r in keep]
        self._attrs = [self._attrs[r] for r in keep]
        self._row = {item_id: r for r, item_id in enumerate(self._ids)}
        self._vectors, self._alive, self._dead = vectors, alive, 0
        self._generation += 1
        # Rows were renumbered: the scanner's snapshot no longer matches any row.
        self._scanner, self._dirty, self._dirty_rows = None, set(), None
        if self._build_dirty is not None:
            self._build_dirty = set()
        self._postings, self._posting_rows, self._has_attr = {}, {}, {}
        for r in range(len(keep)):
            self._post(r)

    def _post(self, row: int) -> None:
        for name, values in self._attrs[row].items():
            mask = self._has_attr.get(name)
            if mask is None:
                mask = self._has_attr[name] = np.zeros(len(self._alive), dtype=bool)
            mask[row] = True
            for value in values:
                self._postings.setdefault((name, value), set()).add(row)
                self._posting_rows.pop((name, value), None)

    def _unpost(self, row: int) -> None:
        for name, values in self._attrs[row].items():
            mask = self._has_attr.get(name)
            if mask is not None:
                mask[row] = False
            for value in values:
                self._postings.get((name, value), set()).discard(row)
                self._posting_rows.pop((name, value), None)

    def _rows_of(self, pair: AttrPair) -> np.ndarray | None:
        """Sorted rows carrying the pair (cached until the pair changes); None if never seen.
        Caller holds the lock. Unknown pairs are not cached: request filters name any value."""
        rows = self._posting_rows.get(pair)
        if rows is None:
            postings = self._postings.get(pair)
            if postings is None:
                return None
            rows = np.fromiter(postings, dtype=np.int64, count=len(postings))
            rows.sort()
            self._posting_rows[pair] = rows
        return rows

    def _extend_vocabulary(self, items: list[CatalogItem]) -> None:
        if self._embed_values is None:
            return
        with self._lock:
            new = sorted({(name, value) for item in items for name, values in
                          item.attributes.items() for value in values} - self._vocab.keys())
        if not new:
            return
        # Embed outside the lock: encoding is slow and readers must not wait for it.
        vectors = self._embed_values([value for _, value in new])
        with self._lock:
            for pair, vec in zip(new, vectors, strict=True):
                self._vocab[pair] = vec

    # ---- reads --------------------------------------------------------------------------

    def view(self) -> IndexView:
        """A read view that stays valid while writers continue."""
        with self._lock:
            n = len(self._ids)
            scanner, delta = self._scanner, None
            if scanner is not None:
                if self._dirty_rows is None:
                    self._dirty_rows = np.array(sorted(self._dirty), dtype=np.int64)
                delta = np.concatenate([self._dirty_rows,
                                        np.arange(scanner.rows, n, dtype=np.int64)])
            return IndexView(self._vectors[:n], self._alive[:n].copy(), self._ids, n,
                             self._generation,
                             self._behaviour[:n] if self._behaviour_embed is not None else None,
                             scanner, delta, self._behaviour_model)

    # ---- the scanner ----------------------------------------------------------------------

    def _mark_dirty(self, row: int) -> None:
        """Caller holds the lock: `row` was overwritten, so snapshots taken before hold stale
        codes for it."""
        if self._scanner is not None and row < self._scanner.rows:
            self._dirty.add(row)
            self._dirty_rows = None
        if self._build_dirty is not None:
            self._build_dirty.add(row)

    def _wanted(self) -> bool:
        """Caller holds the lock: whether a (re)build would change what readers get."""
        live = len(self._row)
        if live < self.scan_min_items:
            return self._scanner is not None
        scanner = self._scanner
        if scanner is None or scanner.generation != self._generation:
            return True
        if (scanner.kind == "ann") != (live >= self.ann_min_items):
            return True
        delta = len(self._dirty) + len(self._ids) - scanner.rows
        return delta > max(4096, scanner.rows // 8)

    def _maybe_rebuild(self) -> None:
        with self._lock:
            self._last_write = time.monotonic()
            if not self._background or not self._wanted():
                return
            if self._builder is not None and self._builder.is_alive():
                return
            self._builder = threading.Thread(target=self._rebuild_when_quiet, daemon=True,
                                             name="item-index-scanner")
            self._builder.start()

    def _rebuild_when_quiet(self) -> None:
        started = time.monotonic()
        while True:
            with self._lock:
                idle = time.monotonic() - self._last_write
            if idle >= REBUILD_QUIET_S or time.monotonic() - started >= REBUILD_MAX_WAIT_S:
                break
            time.sleep(REBUILD_QUIET_S - idle)
        try:
            self.build_scanner()
        except Exception:  # pragma: no cover - readers keep the exact path
            log.exception("building the item scanner failed; Recommend scans exactly")

    def build_scanner(self) -> None:
        """Build (or drop) the scanner now, if the catalog wants a different one; blocks."""
        with self._build_lock:
            with self._lock:
                if not self._wanted():
                    return
                live = len(self._row)
                if live < self.scan_min_items:
                    self._scanner, self._dirty, self._dirty_rows = None, set(), None
                    return
                n, generation = len(self._ids), self._generation
                vectors = self._vectors[:n]  # rows overwritten from now on go to _build_dirty
                self._build_dirty = set()
            t0 = time.perf_counter()
            scanner = build_scanner(vectors, generation, ann=live >= self.ann_min_items)
            with self._lock:
                dirty = {r for r in self._build_dirty or () if r < n}
                self._build_dirty = None
                if generation == self._generation:
                    self._scanner, self._dirty, self._dirty_rows = scanner, dirty, None
            log.info("item scanner (%s) over %d rows built in %.1f s", scanner.kind, n,
                     time.perf_counter() - t0)

    def scanner_status(self) -> tuple[str, int] | None:
        """(kind, rows) of the current scanner, or None while Recommend scans exactly."""
        with self._lock:
            s = self._scanner
            return None if s is None or s.generation != self._generation else (s.kind, s.rows)

    def _check(self, view: IndexView) -> None:
        if view.generation != self._generation:
            raise StaleView()

    def __len__(self) -> int:
        with self._lock:
            return len(self._row)

    def __contains__(self, item_id: object) -> bool:
        return item_id in self._row

    def vector(self, item_id: str) -> np.ndarray | None:
        """The item's vector (a copy), or None if unknown."""
        with self._lock:
            row = self._row.get(item_id)
            return None if row is None else self._vectors[row].copy()

    def rows(self, item_ids: Iterable[str], view: IndexView) -> np.ndarray:
        """Row numbers (within the view) of the known ids among item_ids."""
        with self._lock:
            self._check(view)
            found = [self._row.get(i) for i in item_ids]
        return np.array([r for r in found if r is not None and r < view.n], dtype=np.int64)

    def rows_aligned(self, item_ids: Sequence[str], view: IndexView) -> np.ndarray:
        """Row of each id within the view, -1 where unknown (same length as item_ids)."""
        with self._lock:
            self._check(view)
            found = [self._row.get(i, -1) for i in item_ids]
        return np.array([r if r < view.n else -1 for r in found], dtype=np.int64)

    def mask(self, pairs: Iterable[AttrPair], view: IndexView) -> np.ndarray:
        """Rows carrying at least one of the (name, value) pairs."""
        n = view.n
        out = np.zeros(n, dtype=bool)
        with self._lock:
            self._check(view)
            for pair in pairs:
                rows = self._rows_of(pair)
                if rows is not None:
                    out[rows[: np.searchsorted(rows, n)]] = True
        return out

    def has_attribute_mask(self, name: str, view: IndexView) -> np.ndarray:
        """Rows with any value for the attribute name."""
        with self._lock:
            self._check(view)
            mask = self._has_attr.get(name)
            return np.zeros(view.n, dtype=bool) if mask is None else mask[: view.n].copy()

    def describe(self, row: int, view: IndexView) -> tuple[str, dict[str, tuple[str, ...]]]:
        """Text and attributes of a row of the view."""
        with self._lock:
            self._check(view)
            return self._texts[row], dict(self._attrs[row])

    def vocabulary(self) -> tuple[list[AttrPair], np.ndarray]:
        """Every (attribute, value) seen in the catalog with its embedding."""
        with self._lock:
            pairs = sorted(self._vocab)
            if not pairs:
                return [], np.zeros((0, self.dim), dtype=np.float32)
            return pairs, np.stack([self._vocab[p] for p in pairs])
