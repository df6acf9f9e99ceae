"""Quantised candidate scans of the item matrix: certified int8 (exact) and PQ fast-scan (ANN)."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import faiss
import numpy as np

log = logging.getLogger(__name__)

SCAN_MIN_ITEMS = 32_768
"""Below this a full fp32 mat-vec is already cheap (~1-3 ms at 384 dims); no scanner is built."""
SHORTLIST = 256
"""Candidates re-scored in fp32 per request (the top-k needs far fewer; see the certificate)."""
ANN_REFINE_FACTOR = 32
"""ANN: PQ candidates per shortlisted row, re-ranked on int8 codes before the fp32 re-score.
Measured on 1M random unit vectors (the benchmark's worst case for any ANN), 30 queries:
PQ96x4 + int8 re-rank of 16 / 32 per row: recall@10 0.95 / 0.987; PQ64x4: 0.78 / 0.87. Taking
the 8k PQ candidates straight to fp32 instead costs ~4x more than the int8 re-rank."""
TRAIN_SAMPLE = 65_536
"""Rows the PQ / int8 ranges are trained on (deterministic sample)."""
SLACK = 1e-4
"""Relative float32 accumulation error allowed for in the int8 bound (384 terms: ~2e-5)."""
_CHUNK = 65_536


@dataclass(frozen=True)
class Candidates:
    """Rows a scan proposes, with a bound on every kept row it did not propose."""

    rows: np.ndarray
    """Sorted snapshot rows (kept rows only)."""
    bound: float | None
    """Certified scans: every kept, unchanged row outside `rows` scores at most this (exactly);
    -inf when every kept row was proposed. None: approximate scan, no guarantee."""
    estimates: np.ndarray | None = None
    """Certified scans: each proposed row's int8 score, aligned with `rows`; its exact fp32
    score lies within `margin` of it, so rows that cannot reach the top k need no re-score."""
    margin: float = math.inf


class Scanner:
    """An immutable quantised copy of rows [0, rows) of one index generation. Searches need no
    lock (FAISS searches are thread-safe); changes after the snapshot are the index's delta."""

    def __init__(self, kind: str, rows: int, generation: int, index: faiss.Index,
                 scale: np.ndarray | None = None, max_error: float = 0.0,
                 max_norm: float = 1.0, max_code_norm: float = 0.0,
                 parts: tuple[faiss.Index, ...] = ()) -> None:
        self.kind = kind
        self.rows = rows
        self.generation = generation
        self.certified = kind == "exact"
        self._index = index
        self._parts = parts  # IndexRefine does not own its sub-indexes: keep them alive
        self._scale = scale
        self._max_error = max_error
        self._max_norm = max_norm
        self._max_code_norm = max_code_norm

    def candidates(self, query: np.ndarray, keep: np.ndarray, want: int,
                   exact_filter: bool = False) -> Candidates:
        """About `want` kept rows of the snapshot with the highest approximate `row @ query`.
        `keep` covers at least the snapshot's rows. A certified scan applies the filter inside
        the scan (`want` results are `want` kept rows) when `exact_filter` is set or when it
        keeps under half the rows; otherwise it scans unfiltered for `want` scaled by the kept
        fraction and drops the rows `keep` removes (the bound still covers every kept row not
        proposed), which skips a per-row selector call in the scan."""
        keep = keep[: self.rows]
        kept = int(np.count_nonzero(keep))
        if kept == 0:
            return Candidates(np.zeros(0, dtype=np.int64), -math.inf)
        # FAISS's 8-bit direct kernel encodes the query with the same codec (int8 x int8,
        # exact integer sums), so the query is rounded onto [-127, 127] too; the PQ codes live
        # in the same scaled space, so one query serves both.
        assert self._scale is not None
        qs = query.astype(np.float64) / self._scale
        peak = float(np.abs(qs).max())
        if peak == 0:
            return Candidates(np.zeros(0, dtype=np.int64), 0.0)  # all tie: not certifiable
        t = 127.0 / peak
        qc = np.rint(qs * t)
        q = qc[None, :].astype(np.float32)
        if self.certified:
            # q.x = dist/t + (qs - qc/t).codes + q.(x - codes/scale): bound both error terms
            # (and the fp32 accumulation of the exact score, SLACK).
            qn = float(np.linalg.norm(query))
            query_error = float(np.linalg.norm(qs - qc / t)) * self._max_code_norm
            margin = query_error + qn * (self._max_error + SLACK * self._max_norm)
            if exact_filter or 2 * kept < self.rows:
                bitmap = np.packbits(keep, bitorder="little")
                params = faiss.SearchParameters(
                    sel=faiss.IDSelectorBitmap(self.rows, faiss.swig_ptr(bitmap)))
                fetch = min(want, kept)
                dist, found = self._index.search(q, fetch, params=params)
                complete = fetch >= kept
            else:
                fetch = min(self.rows, math.ceil(want * self.rows / kept))
                dist, found = self._index.search(q, fetch)
                complete = fetch >= self.rows
            valid = found[0] >= 0
            rows, est = found[0][valid], dist[0][valid].astype(np.float64) / t
            complete = complete or len(rows) < fetch
            bound = -math.inf if complete else float(est[-1]) + margin
            sel = keep[rows]
            if not sel.all():
                rows, est = rows[sel], est[sel]
            order = np.argsort(rows)
            return Candidates(rows[order], bound, est[order], margin)
        # PQ fast-scan takes no id filter: over-fetch by the kept fraction, then filter.
        fetch = min(self.rows, math.ceil(want * self.rows / kept))
        _, found = self._index.search(q, fetch)
        rows = found[0][found[0] >= 0]
        rows = rows[keep[rows]][:want]
        return Candidates(np.sort(rows), None)


def build_scanner(vectors: np.ndarray, generation: int, ann: bool) -> Scanner:
    """A scanner over `vectors` (rows [0, len)); `ann` picks PQ fast-scan over certified int8."""
    n, dim = vectors.shape
    # Per-dimension scale onto [-127, 127]; stored as exact integers, so FAISS's 8-bit "direct"
    # codes hold them losslessly and its fast kernel computes sum(q_i / s_i * code_i).
    peak = np.zeros(dim, dtype=np.float32)
    norm = 0.0
    for start in range(0, n, _CHUNK):
        block = vectors[start:start + _CHUNK]
        peak = np.maximum(peak, np.abs(block).max(axis=0))
        norm = max(norm, float(np.linalg.norm(block, axis=1).max()))
    scale = np.where(peak > 0, 127.0 / np.maximum(peak, 1e-30), 1.0).astype(np.float32)
    index = faiss.IndexScalarQuantizer(dim, faiss.ScalarQuantizer.QT_8bit_direct_signed,
                                       faiss.METRIC_INNER_PRODUCT)
    pq = None
    if ann:
        m = next(m for m in (dim // 4, dim // 2, dim) if m > 0 and dim % m == 0)
        pq = faiss.IndexPQFastScan(dim, m, 4, faiss.METRIC_INNER_PRODUCT)
        sample = vectors[np.sort(np.random.default_rng(0).choice(n, min(n, TRAIN_SAMPLE),
                                                                 replace=False))]
        pq.train(sample * scale)
    max_error = code_norm = 0.0
    for start in range(0, n, _CHUNK):
        block = vectors[start:start + _CHUNK]
        codes = np.clip(np.rint(block * scale), -127, 127).astype(np.float32)
        err = np.linalg.norm(block.astype(np.float64) - codes / scale.astype(np.float64), axis=1)
        max_error = max(max_error, float(err.max()))
        code_norm = max(code_norm, float(np.linalg.norm(codes, axis=1).max()))
        index.add(codes)
        if pq is not None:
            pq.add(np.ascontiguousarray(block * scale))
    if pq is not None:
        refine = faiss.IndexRefine(pq, index)
        refine.k_factor = ANN_REFINE_FACTOR
        return Scanner("ann", n, generation, refine, scale, parts=(pq, index))
    # Rounding noise of the error computation itself is far below this margin.
    return Scanner("exact", n, generation, index, scale, max_error * 1.001 + 1e-7, norm,
                   code_norm * 1.001)
