"""The popularity prior of the default model: the blend, its reasons, the scanner's shortlist of
it, and the online replay's split and metric arithmetic (pure parts)."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from interest_server.model.concepts import Polarity
from interest_server.model.conceptualizer import GroundedConcept, StoredConcept
from interest_server.offline.online_replay import ReplayEvent, _choose, hit_ndcg, time_split
from interest_server.recommend.item_index import CatalogItem, IndexView, ItemIndex
from interest_server.recommend.ranking import (
    POPULAR_NOW,
    REASON_POPULAR,
    REASON_RECENT_ITEM,
    Ranker,
    RankOptions,
    RankResult,
    RecentItem,
    blend_scores,
    normalised_popularity,
    popular_by_blend,
)

DIM = 16
E = np.eye(DIM, dtype=np.float32)


def test_blend_is_the_convex_mix() -> None:
    b = np.array([0.9, 0.5, 0.1], dtype=np.float32)
    p = np.array([0.0, 1.0, 0.5], dtype=np.float32)
    assert blend_scores(b, p, 0.0) == pytest.approx(b)
    assert blend_scores(b, p, 1.0) == pytest.approx(p)
    assert blend_scores(b, p, 0.25) == pytest.approx([0.675, 0.625, 0.2])


def test_popularity_is_normalised_by_the_top_count() -> None:
    assert normalised_popularity(np.array([4.0, 1.0, 0.0, 2.0])) == pytest.approx(
        [1.0, 0.25, 0.0, 0.5])
    # Forward-decayed counts are huge numbers; only their ratios matter.
    assert normalised_popularity(np.array([3e200, 1.5e200])) == pytest.approx([1.0, 0.5])
    assert not normalised_popularity(np.zeros(3)).any()
    assert normalised_popularity(np.array([])).size == 0


def test_popular_by_blend_marks_what_behaviour_alone_would_not_list() -> None:
    behaviour = np.array([0.9, 0.3, 0.3, 0.95])
    popularity = np.array([1.0, 1.0, 0.0, 0.0])
    assert popular_by_blend(behaviour, popularity, 0.5).tolist() == [False, True, False, False]


def _item(item_id: str, vector: np.ndarray) -> CatalogItem:
    return CatalogItem(item_id, f"Title {item_id}. About.", {}, vector.astype(np.float32), "m")


def _rank(index: ItemIndex, w: float, popularity: dict[str, float], k: int = 2,
          recent: tuple[RecentItem, ...] = ()):  # noqa: ANN202
    opts = RankOptions(k=k, theta=0.5, concept_weight=1.0, popularity_weight=w)
    return Ranker(index).rank(index.view(), E[0], [], [], list(recent), popularity, opts)


def _small_index() -> ItemIndex:
    # Cosines to the interest E[0]: near 0.9, mid 0.8, hit 0.7, far 0.
    items = [_item("near", 0.9 * E[0] + math.sqrt(1 - 0.81) * E[1]),
             _item("mid", 0.8 * E[0] + 0.6 * E[2]),
             _item("hit", 0.7 * E[0] + math.sqrt(1 - 0.49) * E[3]),
             _item("far", E[4])]
    index = ItemIndex(DIM, embed_values=None, initial_capacity=8)
    index.upsert(items)
    return index


def test_blend_lifts_a_popular_item_and_says_why() -> None:
    index = _small_index()
    popularity = {"hit": 100.0, "near": 1.0}
    recent = (RecentItem("near", "liked"),)
    plain = _rank(index, 0.0, popularity, recent=recent)
    assert [i.item_id for i in plain.items] == ["near", "mid"]
    blended = _rank(index, 0.3, popularity, recent=recent)
    assert blended.strategy == "behaviour"
    assert [i.item_id for i in blended.items] == ["hit", "near"]
    hit, near = blended.items
    assert hit.score == pytest.approx(0.7 * 0.7 + 0.3 * 1.0)
    assert near.score == pytest.approx(0.7 * 0.9 + 0.3 * 0.01)
    assert hit.reasons[0].kind == REASON_POPULAR and hit.reasons[0].text == POPULAR_NOW
    assert hit.reasons[0].contribution == pytest.approx(0.3)
    # "near" is listed on behaviour alone: it keeps its own reason only.
    assert [r.kind for r in near.reasons] == [REASON_RECENT_ITEM]
    assert near.reasons[0].contribution == pytest.approx(0.7 * 0.9)


def test_popularity_weight_one_is_the_popularity_list() -> None:
    result = _rank(_small_index(), 1.0, {"far": 5.0, "mid": 10.0}, k=3)
    assert result.strategy == "popular"
    assert [i.item_id for i in result.items] == ["mid", "far", "hit"]


@pytest.mark.parametrize("w", [0.1, 0.3, 0.6])
def test_scanner_shortlist_of_the_blend_equals_the_full_scan(w: float) -> None:
    rng = np.random.default_rng(7)
    vectors = rng.standard_normal((3000, DIM))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    items = [_item(f"i{r:05d}", vectors[r]) for r in range(3000)]
    popularity = {f"i{r:05d}": float(rng.pareto(1.2)) for r in rng.choice(3000, 400, False)}
    query = (vectors[5] + 0.5 * vectors[9]).astype(np.float32)
    query /= np.linalg.norm(query)
    scanned = ItemIndex(DIM, embed_values=None, initial_capacity=16, scan_min_items=1000,
                        ann_min_items=10**9, background=False)
    scanned.upsert(items)
    scanned.build_scanner()
    assert scanned.scanner_status() == ("exact", 3000)
    full = ItemIndex(DIM, embed_values=None, initial_capacity=16)
    full.upsert(items)
    opts = RankOptions(k=10, theta=0.5, concept_weight=1.0, popularity_weight=w)
    got = Ranker(scanned).rank(scanned.view(), query, [], ["i00005"], [], popularity, opts)
    want = Ranker(full).rank(full.view(), query, [], ["i00005"], [], popularity, opts)
    assert [i.item_id for i in got.items] == [i.item_id for i in want.items]
    assert [i.score for i in got.items] == pytest.approx([i.score for i in want.items])
    assert [[r.kind for r in i.reasons] for i in got.items] == \
        [[r.kind for r in i.reasons] for i in want.items]
    if w >= 0.6:  # the prior does list items behaviour alone would not
        assert any(r.text == POPULAR_NOW for i in want.items for r in i.reasons)


def _concept(phrase: str, polarity: Polarity, vector: np.ndarray, links: list[str],
             weight: float = 1.0) -> GroundedConcept:
    vec = np.asarray(vector, dtype=np.float32)
    return GroundedConcept(StoredConcept(phrase, polarity, weight, vec, "m", vec),
                           [(("genre", g), 0.9) for g in links])


def _explained(result: RankResult) -> list[tuple[str, float, list[tuple[int, str, str, float]]]]:
    return [(i.item_id, i.score, [(r.kind, r.text, r.source, round(r.contribution, 5))
                                  for r in i.reasons]) for i in result.items]


@pytest.fixture
def shortlisted(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """One entry per _concept_shortlist or _blend_shortlist call on a view with a scanner:
    whether it gave the list (False: it gave up and the full scan ran)."""
    seen: list[bool] = []
    for name in ("_concept_shortlist", "_blend_shortlist"):
        real = getattr(Ranker, name)

        def spy(self: Ranker, view: IndexView, *args, _real=real, **kwargs):  # noqa: ANN002, ANN003, ANN202
            found = _real(self, view, *args, **kwargs)
            if view.scanner is not None:
                seen.append(found is not None)
            return found

        monkeypatch.setattr(Ranker, name, spy)
    return seen


def _genre_index(vectors: np.ndarray) -> tuple[ItemIndex, IndexView]:
    """A certified scanner over `vectors` (genre r % 5, Noir on every 50th), and the same
    view without it (the full scan)."""
    genres = ("Comedy", "Drama", "Horror", "Romance", "Western")
    items = [CatalogItem(f"i{r:05d}", f"Title {r}. About.",
                         {"genre": (genres[r % 5],) + (("Noir",) if r % 50 == 0 else ())},
                         vectors[r].astype(np.float32), "m") for r in range(len(vectors))]
    index = ItemIndex(DIM, embed_values=None, initial_capacity=16, scan_min_items=1000,
                      ann_min_items=10**9, background=False)
    index.upsert(items)
    index.build_scanner()
    assert index.scanner_status() == ("exact", len(vectors))
    return index, dataclasses.replace(index.view(), scanner=None, delta=None)


@pytest.mark.parametrize("w", [0.0, 0.3, 0.6, 1.0])
def test_scanner_shortlists_with_liked_concepts_equal_the_full_scan(
        w: float, shortlisted: list[bool]) -> None:
    """Behaviour + boosted liked concepts + the prior: the certified scanner's list, scores and
    reasons are the full scan's, for concepts ungrounded, grounded on a value a fifth of the
    items carry (a filtered scan) or few carry (scored exactly), with a dislike; and with no
    concept at all (w = 1: the popularity list, no scanner)."""
    rng = np.random.default_rng(11)
    n = 4000
    vectors = rng.standard_normal((n, DIM))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    index, full = _genre_index(vectors)
    popularity = {f"i{r:05d}": float(rng.pareto(1.2)) for r in rng.choice(n, 400, False)}
    recent = [RecentItem(f"i{r:05d}", "liked") for r in rng.choice(n, 8, False)]
    consumed = [r.item_id for r in recent]
    cases = [
        [],
        [_concept("dark", Polarity.POSITIVE, vectors[17], [])],
        [_concept("comedy", Polarity.POSITIVE, vectors[5], ["Comedy"], 0.6)],
        [_concept("noir", Polarity.POSITIVE, vectors[50], ["Noir"]),
         _concept("dark", Polarity.POSITIVE, vectors[17], [], 0.8),
         _concept("romance", Polarity.NEGATIVE, vectors[3], ["Romance"])],
    ]
    popular_now = 0
    for case, concepts in enumerate(cases):
        query = (vectors[rng.choice(n, 6)].sum(axis=0)).astype(np.float32)
        query /= np.linalg.norm(query)
        opts = RankOptions(k=10 + case, theta=0.3, concept_weight=0.5, popularity_weight=w)
        ranker = Ranker(index)
        got = ranker.rank(index.view(), query, concepts, consumed, recent, popularity, opts)
        want = ranker.rank(full, query, concepts, consumed, recent, popularity, opts)
        # The scanner gave the list (w = 1 is the popularity list: no scan at all), or with
        # w = 0 and no concept, the plain behaviour shortlist did.
        if w < 1 and (concepts or w > 0):
            assert shortlisted.pop() is True, "the scanner's shortlist was not used"
        assert not shortlisted
        assert got.strategy == want.strategy
        assert len(got.items) == 10 + case
        assert _explained(got) == _explained(want)
        assert (got.removed_consumed, got.removed_by_dislikes) == (
            want.removed_consumed, want.removed_by_dislikes)
        popular_now += sum(r.text == POPULAR_NOW for i in want.items for r in i.reasons)
    if 0 < w < 1:  # the prior does list items behaviour alone would not
        assert popular_now > 0


def test_popular_now_under_a_liked_concept_reads_the_exact_behaviour_kth(
        shortlisted: list[bool]) -> None:
    """The items best by behaviour point away from the liked concept, so no concept scan
    proposes them; a popular item on the concept is listed with a behaviour score below
    theirs: it is there for its popularity ("popular now"), as the full scan says, although
    its behaviour beats the k-th best among the rows the scans proposed. It also carries the
    concept, so its reasons go by contribution."""
    rng = np.random.default_rng(13)
    n = 20_000
    vectors = rng.standard_normal((n, DIM))
    query, concept = np.eye(DIM)[0], np.eye(DIM)[1]
    for r in range(1, 25, 2):  # 12 unpopular items: q.x 0.89, concept term (0.7 q + 1.4 c).x 0
        vectors[r] = query - 0.5 * concept + 0.02 * rng.standard_normal(DIM)
    for r in range(2, 8, 2):  # 3 popular ones: q.x 0.78, far along the concept
        vectors[r] = query + 0.8 * concept + 0.02 * rng.standard_normal(DIM)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    index, full = _genre_index(vectors)
    popularity = {f"i{r:05d}": float(rng.pareto(1.2)) for r in rng.choice(n, 300, False)}
    popularity.update({f"i{r:05d}": 50.0 for r in range(2, 8, 2)})
    liked = [_concept("dark", Polarity.POSITIVE, concept, [])]
    opts = RankOptions(k=10, theta=0.3, concept_weight=1.4, popularity_weight=0.3)
    q = query.astype(np.float32)
    got = Ranker(index).rank(index.view(), q, liked, [], [], popularity, opts)
    want = Ranker(index).rank(full, q, liked, [], [], popularity, opts)
    assert shortlisted == [True]
    assert _explained(got) == _explained(want)
    planted = [i for i in want.items if i.item_id in {"i00002", "i00004", "i00006"}]
    assert len(planted) == 3
    # Listed for their popularity, and boosted by the liked concept as well: both reasons are
    # given, in contribution order (the concept first when it weighs more).
    for item in planted:
        assert POPULAR_NOW in [r.text for r in item.reasons]
        contributions = [r.contribution for r in item.reasons]
        assert contributions == sorted(contributions, reverse=True)


# ---- the online replay's pure parts -------------------------------------------------------

def test_hit_ndcg_arithmetic() -> None:
    got = hit_ndcg([0, 1, math.inf, 9, 10])
    assert got["hr@10"] == pytest.approx(3 / 5)
    assert got["ndcg@10"] == pytest.approx((1.0 + 1 / math.log2(3) + 1 / math.log2(11)) / 5)
    assert got["events"] == 5
    assert hit_ndcg([])["hr@10"] == 0.0


def test_time_split_auto_puts_eighty_percent_in_the_past() -> None:
    events = [ReplayEvent(f"u{i % 7}", f"m{i}", 1000 + i) for i in range(200)]
    split = time_split(reversed(events), valid_events=15, max_events=30)
    assert split.split_time_s == 1160
    past = split.history + split.valid
    assert len(past) == 160 and all(e.timestamp_s < 1160 for e in past)
    assert len(split.valid) == 15 and split.valid[0].timestamp_s == 1145
    assert [e.timestamp_s for e in split.test] == list(range(1160, 1190))
    assert split.later_total == 40
    fixed = time_split(events, split_time_s=1100, valid_events=1000, max_events=None)
    assert len(fixed.history) + len(fixed.valid) == 100 and len(fixed.valid) == 10
    assert len(fixed.test) == 100


def test_weight_is_chosen_by_validation_ndcg_then_hr_then_smaller() -> None:
    valid = {"0": {"hr@10": 0.1, "ndcg@10": 0.05}, "0.2": {"hr@10": 0.2, "ndcg@10": 0.08},
             "0.5": {"hr@10": 0.3, "ndcg@10": 0.08}, "0.7": {"hr@10": 0.3, "ndcg@10": 0.08}}
    assert _choose(valid) == "0.5"
