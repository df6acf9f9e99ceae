"""Ranking: behaviour similarity + concept affinity, dislike and request filters, top-k, reasons."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from interest_server.model.concepts import Polarity
from interest_server.model.conceptualizer import GroundedConcept
from interest_server.recommend.item_index import AttrPair, IndexView, ItemIndex
from interest_server.recommend.scan import SHORTLIST, Candidates

POPULARITY_WEIGHT_COLD = 1.0
UNCOVERED_GATHER_FRACTION = 8
"""A dislike's cosine fallback gathers the uncovered rows when they are at most 1/8 of the
matrix; above that one full mat-vec is cheaper than copying the rows out (measured at 100k x 384:
a 10% gather + product 3.7 ms vs a full product 13.8 ms; a 30% gather 42 ms). The same rule
sends heavily filtered requests past the scanner: scoring the few kept rows is exact and cheap."""
ANN_GATHER_FRACTION = 64
"""With the ANN (PQ fast-scan, 48 B a row) scanner, a boosted concept's carriers are gathered
and scored exactly only when they are at most 1/64 of the rows (a gathered fp32 row is read and
written, ~3 KB, against 48 B of codes scanned per row); above that their filtered scan is
cheaper (1M rows, 11% carriers: see bench/README.md, Recommend, liked concepts)."""


@dataclass(frozen=True)
class RankOptions:
    """Per-request knobs, already validated and defaulted."""

    k: int
    theta: float
    concept_weight: float
    exclude_consumed: bool = True
    popularity_weight: float = 0.0
    """w of the popularity prior blended into behaviour scores (blend_scores); applied only
    when the caller passes a popularity list along with an interest vector."""
    exclude_item_ids: Sequence[str] = ()
    include: Sequence[tuple[str, Sequence[str]]] = ()
    exclude: Sequence[tuple[str, Sequence[str]]] = ()


@dataclass(frozen=True)
class RecentItem:
    """A recent positive event of the user, to explain recommendations."""

    item_id: str
    verb: str


@dataclass
class Reason:
    """Why an item is in the list (kind matches interest.v1.ReasonKind)."""

    kind: int
    text: str
    source: str
    contribution: float


REASON_BEHAVIOUR, REASON_CONCEPT, REASON_RECENT_ITEM, REASON_POPULAR = 1, 2, 3, 4


@dataclass
class Ranked:
    """One recommended item."""

    item_id: str
    score: float
    text: str
    attributes: dict[str, tuple[str, ...]]
    reasons: list[Reason] = field(default_factory=list)


@dataclass
class RankResult:
    """The list plus what was filtered out, for the response and for debugging."""

    items: list[Ranked]
    removed_by_dislikes: int
    removed_consumed: int
    removed_by_filters: int
    strategy: str


@dataclass(frozen=True)
class _Scored:
    """The score parts of listed rows (aligned with them), for their reasons."""

    score: np.ndarray
    behaviour: np.ndarray | None
    affinity: np.ndarray | None
    best_concept: np.ndarray | None
    popularity: np.ndarray | None
    blend: float = 0.0
    """w when popularity was blended into behaviour (behaviour and popularity are then the
    unweighted parts); 0 otherwise."""
    behaviour_kth: float = -math.inf
    """With a blend: the k-th best behaviour score among the kept items."""


POPULAR_NOW = "popular now"
"""The reason of a listed item that behaviour alone would not have listed (the blend put it
there)."""


def blend_scores(behaviour: np.ndarray, popularity: np.ndarray, weight: float) -> np.ndarray:
    """(1 - w) * behaviour + w * popularity: the default model's score with the popularity
    prior (popularity normalised to [0, 1] by _popularity_scores: decayed count / the top's)."""
    return ((1.0 - weight) * behaviour + weight * popularity).astype(np.float32)


def normalised_popularity(counts: np.ndarray) -> np.ndarray:
    """Decayed counts as a fraction of the largest (all zeros when none is positive). The
    counts are forward-decayed (user_store.py), so only their ratios mean anything."""
    top = float(counts.max()) if counts.size else 0.0
    if top <= 0:
        return np.zeros(counts.shape, dtype=np.float32)
    return (np.maximum(counts, 0.0) / top).astype(np.float32)


def popular_by_blend(behaviour: np.ndarray, popularity: np.ndarray, behaviour_kth: float
                     ) -> np.ndarray:
    """Which listed items the popularity prior put there: popular ones that scored below the
    k-th best behaviour score, so behaviour alone would not have listed them."""
    return (popularity > 0) & (behaviour < behaviour_kth)


def _kth(scores: np.ndarray, k: int) -> float:
    """The k-th largest score (-inf when there are fewer than k)."""
    if k <= 0 or len(scores) < k:
        return -math.inf
    return float(np.partition(scores, len(scores) - k)[len(scores) - k])


def short_title(text: str) -> str:
    """The part of an item text before the first '. ', for readable reasons."""
    return text.split(". ", 1)[0]


class Ranker:
    """Scores the live items of the index for one user: every item (one matrix-vector product),
    or, when the index has a scanner and the score is behaviour alone or behaviour plus boosted
    liked concepts, a shortlist re-scored in fp32."""

    def __init__(self, index: ItemIndex) -> None:
        self.index = index

    def rank(self, view: IndexView, interest: np.ndarray | None,
             concepts: Sequence[GroundedConcept], consumed: Sequence[str],
             recent: Sequence[RecentItem], popularity: dict[str, float],
             opts: RankOptions, standardise: bool = False) -> RankResult:
        """Rank the catalog for one user. `standardise` rescales behaviour scores (a learned
        model's logits) to the spread of cosine similarities before concepts are added."""
        n = view.n
        keep = view.alive.copy()
        kept = int(np.count_nonzero(keep))  # kept up to date; a step that ran recounts

        # Consumed, then request filters, then dislikes: each count is what that step removed.
        removed_consumed = 0
        if opts.exclude_consumed and consumed:
            rows = np.unique(self.index.rows(consumed, view))
            removed_consumed = int(np.count_nonzero(keep[rows]))  # live before, gone after
            keep[rows] = False
            kept -= removed_consumed
        removed_by_filters = 0
        if opts.exclude_item_ids or opts.include or opts.exclude:
            if opts.exclude_item_ids:
                keep[self.index.rows(opts.exclude_item_ids, view)] = False
            for name, values in opts.include:
                keep &= self.index.mask([(name, v) for v in values], view)
            for name, values in opts.exclude:
                keep &= ~self.index.mask([(name, v) for v in values], view)
            removed_by_filters, kept = _recount(keep, kept)

        positives = [g for g in concepts if g.concept.polarity == Polarity.POSITIVE]
        negatives = [g for g in concepts if g.concept.polarity == Polarity.NEGATIVE]
        removed_by_dislikes = 0
        if negatives:
            for g in negatives:
                keep &= ~self._dislike_mask(view, g, opts.theta, keep)
            removed_by_dislikes, kept = _recount(keep, kept)

        boosted = bool(positives) and opts.concept_weight != 0
        w = opts.popularity_weight if interest is not None and popularity else 0.0
        if w >= 1.0:
            interest = None  # popularity alone: the cold-start list, with every filter applied
        if interest is not None and not standardise and view.behaviour_vectors is None:
            if not boosted and w > 0:
                found = self._blend_shortlist(view, interest, keep, popularity, w, opts.k, kept)
                if found is not None:
                    rows, scored = found
                    return RankResult(self._items(view, rows, scored, positives, recent, opts),
                                      removed_by_dislikes, removed_consumed, removed_by_filters,
                                      "behaviour")  # the prior is part of the behaviour score
            elif not boosted:
                # The score is linear in the item vector: a scanner can shortlist it.
                shortlist = self._shortlist(view, interest, keep, opts.k, kept)
                if shortlist is not None:
                    explain = _Explainer(self.index, view, recent)
                    items = []
                    for r, b in zip(*shortlist, strict=True):
                        text, attrs = self.index.describe(int(r), view)
                        reason = explain.behaviour(int(r), float(b))
                        items.append(Ranked(view.ids[r], float(b), text, attrs, [reason]))
                    return RankResult(items, removed_by_dislikes, removed_consumed,
                                      removed_by_filters, "behaviour")
            elif opts.concept_weight > 0 and all(g.concept.weight >= 0 for g in positives):
                # Behaviour plus boosted concepts: a maximum of linear scores (see
                # _concept_shortlist), which the scanner can shortlist too.
                found = self._concept_shortlist(view, interest, positives, keep, opts, kept,
                                                popularity, w)
                if found is not None:
                    rows, scored = found
                    items = self._items(view, rows, scored, positives, recent, opts)
                    return RankResult(items, removed_by_dislikes, removed_consumed,
                                      removed_by_filters, "behaviour+concepts")

        score = np.zeros(n, dtype=np.float32)
        behaviour = None
        if interest is not None:
            matrix = view.vectors if view.behaviour_vectors is None else view.behaviour_vectors
            behaviour = matrix @ interest
            if standardise:
                behaviour = _standardise(behaviour, keep)
            score += behaviour if w == 0 else (1.0 - w) * behaviour
        affinity, best_concept = None, None
        if boosted:
            per_concept = np.stack([g.concept.weight * self._affinity(view, g)
                                    for g in positives])
            best_concept = per_concept.argmax(axis=0)
            affinity = per_concept.max(axis=0)
            score += opts.concept_weight * affinity
        pop = None
        if behaviour is None and affinity is None:
            pop = self._popularity_scores(view, popularity)
            score += POPULARITY_WEIGHT_COLD * pop
        elif behaviour is not None and w > 0:
            pop = self._popularity_scores(view, popularity)
            score += np.float32(w) * pop
        strategy = ("popular" if pop is not None and behaviour is None else
                    "behaviour+concepts" if behaviour is not None and affinity is not None else
                    "behaviour" if behaviour is not None else "concepts")

        rows = np.asarray(_top_k(score, keep, opts.k, view.ids), dtype=np.int64)
        scored = _Scored(score[rows], None if behaviour is None else behaviour[rows],
                         None if affinity is None else affinity[rows],
                         None if best_concept is None else best_concept[rows],
                         None if pop is None else pop[rows],
                         w if pop is not None and behaviour is not None else 0.0,
                         _kth(behaviour[keep], opts.k) if behaviour is not None and w > 0
                         else -math.inf)
        return RankResult(self._items(view, rows, scored, positives, recent, opts),
                          removed_by_dislikes, removed_consumed, removed_by_filters, strategy)

    def _items(self, view: IndexView, rows: np.ndarray, scored: _Scored,
               positives: Sequence[GroundedConcept], recent: Sequence[RecentItem],
               opts: RankOptions) -> list[Ranked]:
        """The listed items with their reasons; `scored` is aligned with `rows`."""
        explain = _Explainer(self.index, view, recent)
        w = scored.blend
        by_popularity = np.zeros(len(rows), dtype=bool)
        if w > 0 and scored.behaviour is not None and scored.popularity is not None:
            by_popularity = popular_by_blend(scored.behaviour, scored.popularity,
                                             scored.behaviour_kth)
        items = []
        for j, r in enumerate(rows):
            text, attrs = self.index.describe(int(r), view)
            reasons: list[Reason] = []
            if scored.affinity is not None and scored.best_concept is not None:
                g = positives[int(scored.best_concept[j])]
                reasons.append(self._concept_reason(g, attrs, opts.concept_weight
                                                    * float(scored.affinity[j])))
            if scored.behaviour is not None:
                reasons.append(explain.behaviour(int(r), (1.0 - w) * float(scored.behaviour[j])))
            if scored.popularity is not None and w == 0:
                pop = float(scored.popularity[j])
                why = ("popular with other users" if pop > 0 else
                       "no activity or stated interests yet; shown in item-id order")
                reasons.append(Reason(REASON_POPULAR, why, "", pop))
            reasons.sort(key=lambda x: -x.contribution)
            if by_popularity[j]:
                popular = Reason(REASON_POPULAR, POPULAR_NOW, "", w * float(scored.popularity[j]))
                if scored.affinity is None:
                    # Listed for its popularity (behaviour alone would not have listed it): that
                    # is the reason given first; the others keep theirs.
                    reasons.insert(0, popular)
                else:
                    # A stated interest boosted it too: reasons stay in contribution order, so
                    # the concept that drove it is named first when it weighs most.
                    reasons.append(popular)
                    reasons.sort(key=lambda x: -x.contribution)
            items.append(Ranked(view.ids[r], float(scored.score[j]), text, attrs, reasons))
        return items

    def _shortlist(self, view: IndexView, query: np.ndarray, keep: np.ndarray, k: int,
                   kept: int) -> tuple[np.ndarray, np.ndarray] | None:
        """(top-k rows by `row @ query` among kept rows, their fp32 scores) from the view's
        scanner; None when there is none or its certificate failed twice (scan everything).
        A certified (int8) scanner gives exactly the full scan's list: every row it did not
        propose scores at most `bound`, below the k-th exact score; an ANN scanner gives its
        measured recall."""
        scanner, delta = view.scanner, view.delta
        if scanner is None or delta is None or k <= 0:
            return None
        if kept * UNCOVERED_GATHER_FRACTION <= view.n:  # kept = count_nonzero(keep)
            return _best(view, np.flatnonzero(keep), query, k)
        delta = delta[keep[delta]]  # rows written after the snapshot: always scored exactly
        want = max(SHORTLIST, 4 * k)
        for attempt in range(2):
            # The retry filters inside the scan, in case the removed rows crowded the top.
            found = scanner.candidates(query, keep, want, exact_filter=attempt > 0)
            rows, scores = _best(view, np.union1d(_reachable(found, k, delta), delta), query, k)
            if found.bound is None or found.bound == -math.inf:
                return rows, scores
            if len(rows) == k and float(scores[-1]) > found.bound:
                return rows, scores
            want *= 16
        return None

    def _blend_shortlist(self, view: IndexView, query: np.ndarray, keep: np.ndarray,
                         popularity: dict[str, float], w: float, k: int, kept: int
                         ) -> tuple[np.ndarray, _Scored] | None:
        """The top k of blend_scores without scoring the whole catalog, or None (scan all).

        Only items in `popularity` have a prior; every other item scores (1 - w) * q.x, so
        only its k best by q.x can be listed. Those come from the behaviour shortlist over the
        kept non-popular rows; the popular rows are scored exactly; the union holds the
        blend's top k, and also the k best by behaviour alone (for the reasons)."""
        pop_rows, pop_values = self._popular_rows(view, popularity, keep)
        rest = keep.copy()
        rest[pop_rows] = False
        found = self._shortlist(view, query, rest, k, kept - len(pop_rows))
        if found is None:
            return None
        rows = np.concatenate([found[0].astype(np.int64), pop_rows])
        behaviour = np.concatenate([found[1], view.vectors[pop_rows] @ query]).astype(np.float32)
        pop = np.concatenate([np.zeros(len(found[0]), dtype=np.float32), pop_values])
        score = blend_scores(behaviour, pop, w)
        top = np.asarray(_top_k(score, np.ones(len(rows), dtype=bool), k,
                                _RowIds(view.ids, rows)), dtype=np.int64)
        return rows[top], _Scored(score[top], behaviour[top], None, None, pop[top], w,
                                  _kth(behaviour, k))

    def _popular_rows(self, view: IndexView, popularity: dict[str, float], keep: np.ndarray
                      ) -> tuple[np.ndarray, np.ndarray]:
        """(kept rows of the items in `popularity`, their normalised popularity)."""
        ids = list(popularity)
        rows = self.index.rows_aligned(ids, view)
        values = normalised_popularity(np.array([popularity[i] for i in ids], dtype=np.float64))
        found = rows >= 0
        rows, values = rows[found].astype(np.int64), values[found]
        live = keep[rows]
        rows, values = rows[live], values[live]
        rows, first = np.unique(rows, return_index=True)  # one row per item
        return rows, values[first]

    def _concept_shortlist(self, view: IndexView, query: np.ndarray,
                           positives: Sequence[GroundedConcept], keep: np.ndarray,
                           opts: RankOptions, kept: int, popularity: dict[str, float],
                           blend: float) -> tuple[np.ndarray, _Scored] | None:
        """The top k of behaviour + boosted concepts (+ the popularity prior) from the
        scanner, or None (scan all).

        With W = concept_weight > 0, each concept's weight w >= 0 and the prior's weight b, an
        item's score (1 - b) q.x + b pop(x) + W max_c w_c a_c(x) (a_c = 1 on items carrying one
        of c's linked values, else cos(c, x); pop = 0 off the popularity list) is, on an item
        off the list, the largest of: ((1 - b) q + W w_c c).x for every concept, and
        (1 - b) q.x + W w_c on the items carrying c's values (1 >= cos, so the first kind never
        exceeds the score). Each of those linear terms is one scan over the unpopular rows (the
        carriers' term a filtered one, or all of them scored when they are few); the popular
        rows (at most POPULARITY_CANDIDATES) are always scored exactly. The union is scored
        exactly, and with a certified scanner the list is returned only if its k-th score beats
        every term's bound, so it is the full scan's list. An ANN scanner gives its measured
        recall."""
        scanner, delta = view.scanner, view.delta
        if scanner is None or delta is None or opts.k <= 0:
            return None
        # Each concept's carriers (items with one of its linked values), built once here.
        marks = [self.index.mask([pair for pair, _ in g.links], view) if g.links else None
                 for g in positives]
        prior = self._popular_rows(view, popularity, keep) if blend > 0 else None
        if kept * UNCOVERED_GATHER_FRACTION <= view.n:
            # Every kept row scored: its behaviour k-th is exact.
            return self._concept_best(view, np.flatnonzero(keep), query, positives, marks,
                                      opts, blend, prior)
        delta = delta[keep[delta]]  # rows written after the snapshot: always scored exactly
        rest, exact_rows = keep, [delta]
        if prior is not None:
            # Popular rows are scored exactly; the scans need only bound the others (pop = 0).
            rest = keep.copy()
            rest[prior[0]] = False
            exact_rows.append(prior[0])
        behaviour_query = query if blend == 0 else (np.float32(1.0 - blend) * query).astype(
            np.float32)
        w = opts.concept_weight
        # (query, rows kept, offset, how many to ask for). All carriers of a concept get the
        # same boost, so only its k best carriers by q.x can be listed: the ANN, which filters
        # by over-fetching (rows / carriers times as many), asks for 16k of them, not a full
        # shortlist (1M items, 11% carriers: 4k gave recall@10 0.905, 16k 0.995, 256 1.0 at
        # 21 / 33 / 40 ms p50; bench/README.md, Recommend, liked concepts).
        carriers_want = 16 * opts.k if not scanner.certified else max(SHORTLIST, 4 * opts.k)
        terms: list[tuple[np.ndarray, np.ndarray, float, int]] = []
        gather = UNCOVERED_GATHER_FRACTION if scanner.certified else ANN_GATHER_FRACTION
        for g, marked in zip(positives, marks, strict=True):
            terms.append(((behaviour_query + np.float32(w * g.concept.weight) * g.concept.vector)
                          .astype(np.float32), rest, 0.0, max(SHORTLIST, 4 * opts.k)))
            if marked is not None:
                carriers = rest & marked
                if np.count_nonzero(carriers) * gather <= view.n:
                    exact_rows.append(np.flatnonzero(carriers))
                else:
                    terms.append((behaviour_query, carriers, w * g.concept.weight,
                                  carriers_want))
        for attempt in range(2):
            proposed = list(exact_rows)
            bound: float | None = -math.inf
            for term_query, term_keep, offset, want in terms:
                found = scanner.candidates(term_query, term_keep, want * 16 ** attempt,
                                           exact_filter=attempt > 0)
                proposed.append(found.rows)
                bound = None if found.bound is None or bound is None else max(
                    bound, found.bound + offset)
            rows, scored = self._concept_best(view, np.unique(np.concatenate(proposed)),
                                              query, positives, marks, opts, blend, prior)
            if bound is None or bound == -math.inf or (
                    len(rows) == opts.k and float(scored.score[-1]) > bound):
                return self._behaviour_kth(view, query, rows, scored, rest, prior, opts.k)
        return None

    def _behaviour_kth(self, view: IndexView, query: np.ndarray, rows: np.ndarray,
                       scored: _Scored, rest: np.ndarray,
                       prior: tuple[np.ndarray, np.ndarray] | None, k: int
                       ) -> tuple[np.ndarray, _Scored] | None:
        """`scored` with the k-th best behaviour score among all kept rows, as the full scan
        gives it (popular_by_blend reads it), or None (scan all). The k-th over the scored
        rows is a lower bound: a listed popular item below it is popular_by_blend either
        way; only when one is not is the exact value needed: the behaviour shortlist of the
        unpopular rows plus the popular rows (all scored) hold the kept rows' top k."""
        if prior is None or scored.popularity is None or scored.behaviour is None:
            return rows, scored
        listed = scored.popularity > 0
        if not np.any(listed & (scored.behaviour >= scored.behaviour_kth)):
            return rows, scored
        found = self._shortlist(view, query, rest, k, int(np.count_nonzero(rest)))
        if found is None:
            return None
        behaviour = np.concatenate([found[1], view.vectors[prior[0]] @ query])
        return rows, replace(scored, behaviour_kth=_kth(behaviour, k))

    @staticmethod
    def _concept_best(view: IndexView, rows: np.ndarray, query: np.ndarray,
                      positives: Sequence[GroundedConcept], marks: Sequence[np.ndarray | None],
                      opts: RankOptions, blend: float = 0.0,
                      prior: tuple[np.ndarray, np.ndarray] | None = None
                      ) -> tuple[np.ndarray, _Scored]:
        """Top-k of `rows` by the full scan's score ((1 - blend) behaviour + boosted concepts
        + blend * popularity), computed the same way on the gathered rows (`marks`: each
        concept's carriers, or None for an ungrounded one; `prior`: the kept popular rows,
        sorted, and their normalised popularity); ties by item id. With a blend, the
        behaviour k-th is that of `rows` (exact when they are all the kept rows)."""
        rows = rows.astype(np.int64, copy=False)
        vectors = view.vectors[rows]
        behaviour = vectors @ query
        per_concept = []
        for g, marked in zip(positives, marks, strict=True):
            sims = vectors @ g.concept.vector
            if marked is not None:
                sims = np.where(marked[rows], np.float32(1.0), sims)
            per_concept.append(g.concept.weight * sims)
        stacked = np.stack(per_concept)
        best_concept = stacked.argmax(axis=0)
        affinity = stacked.max(axis=0)
        # The same float32 steps, in the same order, as the full scan in rank().
        score = np.zeros(len(rows), dtype=np.float32)
        score += behaviour if blend == 0 else (1.0 - blend) * behaviour
        score += opts.concept_weight * affinity
        pop = None
        if blend > 0:
            pop = np.zeros(len(rows), dtype=np.float32)
            if prior is not None and len(prior[0]):
                at = np.minimum(np.searchsorted(prior[0], rows), len(prior[0]) - 1)
                hit = prior[0][at] == rows
                pop[hit] = prior[1][at[hit]]
            score += np.float32(blend) * pop
        top = np.asarray(_top_k(score, np.ones(len(rows), dtype=bool), opts.k,
                                _RowIds(view.ids, rows)), dtype=np.int64)
        return rows[top], _Scored(score[top], behaviour[top], affinity[top],
                                  best_concept[top], None if pop is None else pop[top], blend,
                                  _kth(behaviour, opts.k) if blend > 0 else -math.inf)

    def _grounded_mask(self, view: IndexView, g: GroundedConcept) -> tuple[np.ndarray, np.ndarray]:
        """(items carrying a linked value, items covered by a linked attribute name)."""
        pairs: list[AttrPair] = [pair for pair, _ in g.links]
        carries = self.index.mask(pairs, view)
        covered = np.zeros(view.n, dtype=bool)
        for name in {name for name, _ in pairs}:
            covered |= self.index.has_attribute_mask(name, view)
        return carries, covered

    def _dislike_mask(self, view: IndexView, g: GroundedConcept, theta: float,
                      candidates: np.ndarray | None = None) -> np.ndarray:
        """Rows the negative concept removes. Rows outside `candidates` (default: the live
        rows) are already gone and may be left False."""
        if not g.links:
            return (view.vectors @ g.concept.vector) >= theta
        # Exact exclusion by attribute; similarity only for items the attribute does not cover:
        # none at all when it covers every candidate (e.g. every item has a genre).
        carries, covered = self._grounded_mask(view, g)
        uncovered = ~covered & (view.alive if candidates is None else candidates)
        rows = np.flatnonzero(uncovered)
        if len(rows) == 0:
            return carries
        if len(rows) * UNCOVERED_GATHER_FRACTION <= view.n:
            # Few rows: gathering them beats a full scan (uncovered rows carry no linked value).
            carries[rows] = (view.vectors[rows] @ g.concept.vector) >= theta
            return carries
        return carries | (((view.vectors @ g.concept.vector) >= theta) & uncovered)

    def _affinity(self, view: IndexView, g: GroundedConcept) -> np.ndarray:
        sims = view.vectors @ g.concept.vector
        if not g.links:
            return sims
        carries = self.index.mask([pair for pair, _ in g.links], view)
        # A named attribute is the strongest evidence there is: a full match scores 1.
        return np.where(carries, np.float32(1.0), sims)

    def _popularity_scores(self, view: IndexView, popularity: dict[str, float]) -> np.ndarray:
        out = np.zeros(view.n, dtype=np.float32)
        top = max(popularity.values(), default=0.0)
        if top <= 0:
            return out
        ids = list(popularity)
        rows = self.index.rows_aligned(ids, view)
        values = np.array([popularity[i] / top for i in ids], dtype=np.float32)
        found = rows >= 0
        out[rows[found]] = values[found]
        return out

    def _concept_reason(self, g: GroundedConcept, attrs: dict[str, tuple[str, ...]],
                        contribution: float) -> Reason:
        matched = [f"{name} = {value}" for (name, value), _ in g.links
                   if value in attrs.get(name, ())]
        if matched:
            text = f"matches your interest in '{g.concept.phrase}' ({', '.join(matched)})"
        else:
            text = f"similar to your interest in '{g.concept.phrase}'"
        return Reason(REASON_CONCEPT, text, g.concept.phrase, contribution)


class _Explainer:
    """Behaviour reasons for the items of one list: the user's recent items are looked up and
    gathered once per request, not once per listed item."""

    def __init__(self, index: ItemIndex, view: IndexView, recent: Sequence[RecentItem]) -> None:
        self.index, self.view, self.recent = index, view, recent
        self._rows: np.ndarray | None = None
        self._vectors: np.ndarray | None = None
        self._verbs: dict[str, str] = {}

    def behaviour(self, row: int, contribution: float) -> Reason:
        """The recent item closest to `row` (the first of equals), as a reason."""
        if self._rows is None:
            self._rows = self.index.rows([r.item_id for r in self.recent], self.view)
            self._vectors = self.view.vectors[self._rows]
            for r in reversed(self.recent):  # the first event of an item names its verb
                self._verbs[r.item_id] = r.verb
        rows, vectors = self._rows, self._vectors
        if len(rows) == 0 or vectors is None:
            return Reason(REASON_BEHAVIOUR, "close to your recent activity", "", contribution)
        best = int(rows[int((vectors @ self.view.vectors[row]).argmax())])
        source_id = self.view.ids[best]
        title = short_title(self.index.describe(best, self.view)[0])
        return Reason(REASON_RECENT_ITEM,
                      f"because you {self._verbs.get(source_id, 'interacted with')} '{title}'",
                      source_id, contribution)


def _recount(keep: np.ndarray, before: int) -> tuple[int, int]:
    """(rows a step removed, rows kept now), given the kept count before the step."""
    now = int(np.count_nonzero(keep))
    return before - now, now


def _reachable(found: Candidates, k: int, delta: np.ndarray) -> np.ndarray:
    """The proposed rows that can still be in the top k: a row whose score estimate plus its
    error margin is below the k-th best estimate minus the margin scores below at least k
    proposed rows, so it needs no fp32 re-score (certified scans only). Estimates of `delta`
    rows come from stale codes: they set no threshold (those rows are re-scored anyway)."""
    est = found.estimates
    if est is None or len(est) <= k or not math.isfinite(found.margin):
        return found.rows
    known = est if len(delta) == 0 else est[~np.isin(found.rows, delta)]
    if len(known) < k:
        return found.rows
    kth = float(np.partition(known, len(known) - k)[len(known) - k])
    return found.rows[est >= kth - 2 * found.margin]


BEHAVIOUR_SPREAD = 0.1
"""Standard deviation given to standardised behaviour scores: about that of the cosines between
a decayed-average interest vector and the catalog, so concept_weight means the same for both."""


def _standardise(scores: np.ndarray, keep: np.ndarray) -> np.ndarray:
    live = scores[keep] if keep.any() else scores
    std = float(live.std())
    centred = scores - float(live.mean())
    return (centred * (BEHAVIOUR_SPREAD / std) if std > 0 else centred).astype(np.float32)


class _RowIds(Sequence[str]):
    """The ids of a subset of rows, by position in the subset."""

    def __init__(self, ids: Sequence[str], rows: np.ndarray) -> None:
        self._ids, self._rows = ids, rows

    def __getitem__(self, j: int) -> str:  # type: ignore[override]
        return self._ids[int(self._rows[j])]

    def __len__(self) -> int:
        return len(self._rows)


def _best(view: IndexView, rows: np.ndarray, query: np.ndarray, k: int
          ) -> tuple[np.ndarray, np.ndarray]:
    """Top-k of `rows` by exact fp32 `row @ query` (ties by item id): (rows, scores)."""
    rows = rows.astype(np.int64, copy=False)
    scores = view.vectors[rows] @ query
    top = _top_k(scores, np.ones(len(rows), dtype=bool), k, _RowIds(view.ids, rows))
    return rows[top], scores[top]


def _top_k(score: np.ndarray, keep: np.ndarray, k: int, ids: Sequence[str]) -> list[int]:
    """Top-k rows by score among kept rows; ties broken by item id."""
    candidates = np.flatnonzero(keep)
    if len(candidates) == 0 or k <= 0:
        return []
    scores = score[candidates]
    if len(candidates) > k:
        # Everything tied with the k-th score stays in, so the id tie-break is exact.
        kth = np.partition(scores, len(scores) - k)[len(scores) - k]
        sel = scores >= kth
        candidates, scores = candidates[sel], scores[sel]
    order = sorted(range(len(candidates)), key=lambda j: (-float(scores[j]),
                                                          ids[int(candidates[j])]))
    return [int(candidates[j]) for j in order[:k]]
