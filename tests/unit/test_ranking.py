"""Ranking over the in-memory item index: filters and their counts, concepts, ties, reasons."""

from __future__ import annotations

import math

import numpy as np
import pytest
from interest_server.model.concepts import Polarity
from interest_server.model.conceptualizer import GroundedConcept, StoredConcept, ground
from interest_server.recommend.item_index import CatalogItem, ItemIndex, StaleView, embedding_text
from interest_server.recommend.ranking import (
    REASON_BEHAVIOUR,
    REASON_CONCEPT,
    REASON_POPULAR,
    REASON_RECENT_ITEM,
    Ranker,
    RankOptions,
    RankResult,
    RecentItem,
    short_title,
)

DIM = 16
E = np.eye(DIM, dtype=np.float32)
P, N = Polarity.POSITIVE, Polarity.NEGATIVE
CATALOG_ORDER = "no activity or stated interests yet; shown in item-id order"


def mix(a: int, b: int, cos: float) -> np.ndarray:
    """A unit vector at cosine `cos` to E[a], the rest along E[b]."""
    return (cos * E[a] + math.sqrt(1 - cos * cos) * E[b]).astype(np.float32)


def item(item_id: str, vector: np.ndarray, **attributes: tuple[str, ...]) -> CatalogItem:
    return CatalogItem(item_id, f"Title {item_id}. About {item_id}.", dict(attributes),
                       np.asarray(vector, dtype=np.float32), "m")


# Cosines to the "horror" direction E[2]: b1 1, t1 0.9, c1 0.9, everything else 0.
CATALOG = [
    item("a1", E[0], genre=("Comedy",), year=("1999",)),
    item("a2", mix(0, 1, 0.707), genre=("Comedy", "Romance"), year=("2005",)),
    item("b1", E[2], genre=("Horror",), year=("1999",)),
    item("b2", E[3], genre=("Horror", "Thriller"), year=("2005",)),
    item("t1", mix(2, 6, 0.9), genre=("Thriller",), year=("2010",)),
    item("c1", mix(2, 7, 0.9), year=("1999",)),  # no genre attribute
    item("c2", mix(5, 8, 0.8)),  # no attributes at all
    item("d1", E[4], genre=("Drama",), year=("1999",)),
]
ALL_IDS = sorted(i.item_id for i in CATALOG)


def make_index(items: list[CatalogItem] = CATALOG, capacity: int = 1024) -> ItemIndex:
    index = ItemIndex(DIM, embed_values=None, initial_capacity=capacity)
    index.upsert(items)
    return index


def concept(phrase: str, polarity: Polarity, vector: np.ndarray,
            weight: float = 1.0) -> StoredConcept:
    vec = np.asarray(vector, dtype=np.float32)
    return StoredConcept(phrase, polarity, weight, vec, "m", vec)


def grounded(phrase: str, polarity: Polarity, vector: np.ndarray,
             links: list[tuple[str, str]] = (), weight: float = 1.0) -> GroundedConcept:
    return GroundedConcept(concept(phrase, polarity, vector, weight),
                           [(pair, 0.9) for pair in links])


def rank(index: ItemIndex, interest: np.ndarray | None = None,
         concepts: list[GroundedConcept] = (), consumed: list[str] = (),
         recent: list[RecentItem] = (), popularity: dict[str, float] | None = None,
         **opts: object) -> RankResult:
    options = RankOptions(**{"k": 100, "theta": 0.5, "concept_weight": 1.0, **opts})
    return Ranker(index).rank(index.view(), interest, list(concepts), list(consumed),
                              list(recent), popularity or {}, options)


def ids(result: RankResult) -> list[str]:
    return [r.item_id for r in result.items]


# ---- filters and their counts -------------------------------------------------------------

def test_each_count_counts_only_its_own_step() -> None:
    index = make_index()
    horror = grounded("horror", N, E[2])  # ungrounded: cosine only
    result = rank(index, concepts=[horror], consumed=["a1", "b1", "not-in-catalog"],
                  exclude_item_ids=["d1", "also-unknown"], exclude=[("genre", ["Horror"])])
    assert result.removed_consumed == 2  # a1, b1
    assert result.removed_by_filters == 2  # b2 (Horror; b1 already gone), d1
    assert result.removed_by_dislikes == 2  # t1, c1 (b1 already gone)
    assert ids(result) == ["a2", "c2"]


def test_exclude_consumed_off_keeps_consumed_items() -> None:
    result = rank(make_index(), consumed=["a1", "b1"], exclude_consumed=False)
    assert result.removed_consumed == 0
    assert ids(result) == ALL_IDS


def test_consumed_counts_ignore_unknown_and_repeated_ids() -> None:
    result = rank(make_index(), consumed=["a1", "a1", "zz"])
    assert result.removed_consumed == 1
    assert (result.removed_by_filters, result.removed_by_dislikes) == (0, 0)
    assert "a1" not in ids(result) and len(result.items) == len(CATALOG) - 1


def test_counts_skip_deleted_items_and_steps_that_did_not_run() -> None:
    """A consumed item deleted from the catalog is not counted as removed by consumption; steps
    with nothing to do count zero, and the next step's count is still its own."""
    index = make_index()
    index.delete(["a1"])
    result = rank(index, consumed=["a1", "b1", "b1"])
    assert (result.removed_consumed, result.removed_by_filters,
            result.removed_by_dislikes) == (1, 0, 0)
    assert sorted(ids(result)) == sorted(set(ALL_IDS) - {"a1", "b1"})
    horror = grounded("horror", N, E[2])
    result = rank(index, concepts=[horror], consumed=["a1", "b1"])
    assert (result.removed_consumed, result.removed_by_filters,
            result.removed_by_dislikes) == (1, 0, 2)  # t1, c1 (b1 already gone)


@pytest.mark.parametrize(("include", "exclude", "expected"), [
    ([("genre", ["Comedy"])], [], ["a1", "a2"]),
    ([("genre", ["Comedy", "Drama"])], [], ["a1", "a2", "d1"]),  # OR across values
    ([("genre", ["Comedy", "Drama"]), ("year", ["1999"])], [], ["a1", "d1"]),  # AND across
    ([("genre", ["Nope"])], [], []),
    ([("year", ["1999", "2010"])], [], ["a1", "b1", "c1", "d1", "t1"]),
    ([], [("genre", ["Horror", "Comedy"])], ["c1", "c2", "d1", "t1"]),
    ([], [("genre", ["Comedy"]), ("year", ["2010"])], ["b1", "b2", "c1", "c2", "d1"]),
    ([("year", ["1999"])], [("genre", ["Horror"])], ["a1", "c1", "d1"]),
    ([], [("genre", ["Nope"])], ALL_IDS),
])
def test_attribute_filters(include: list, exclude: list, expected: list[str]) -> None:
    result = rank(make_index(), include=include, exclude=exclude)
    assert sorted(ids(result)) == expected
    assert result.removed_by_filters == len(CATALOG) - len(expected)
    assert result.removed_by_dislikes == 0 and result.removed_consumed == 0


# ---- concepts -----------------------------------------------------------------------------

def test_grounded_negative_removes_carriers_and_falls_back_to_cosine_where_uncovered() -> None:
    horror = grounded("horror", N, E[2], links=[("genre", "Horror")])
    result = rank(make_index(), concepts=[horror])
    # b1, b2 carry Horror (b2 despite cosine 0); c1 has no genre and cosine 0.9 >= theta;
    # t1 has cosine 0.9 but its genre attribute says Thriller, so it stays.
    assert sorted(ids(result)) == ["a1", "a2", "c2", "d1", "t1"]
    assert result.removed_by_dislikes == 3


def test_grounded_negative_with_theta_above_fallback_cosine() -> None:
    horror = grounded("horror", N, E[2], links=[("genre", "Horror")])
    result = rank(make_index(), concepts=[horror], theta=0.95)
    assert sorted(ids(result)) == ["a1", "a2", "c1", "c2", "d1", "t1"]
    assert result.removed_by_dislikes == 2


def test_ungrounded_negative_removes_by_cosine_only() -> None:
    horror = grounded("horror", N, E[2])
    result = rank(make_index(), concepts=[horror])
    assert sorted(ids(result)) == ["a1", "a2", "b2", "c2", "d1"]
    assert result.removed_by_dislikes == 3
    assert rank(make_index(), concepts=[horror], theta=0.95).removed_by_dislikes == 1  # b1


def test_negative_concepts_alone_do_not_score() -> None:
    result = rank(make_index(), concepts=[grounded("horror", N, E[2])])
    assert result.strategy == "popular"
    assert all(r.score == 0 for r in result.items)


def test_positive_grounded_concept_ranks_carriers_first_with_reasons() -> None:
    comedies = grounded("comedies", P, E[5], links=[("genre", "Comedy")], weight=0.9)
    result = rank(make_index(), concepts=[comedies], k=3)
    assert result.strategy == "concepts"
    assert ids(result) == ["a1", "a2", "c2"]  # affinity 1, 1 (tie: by id), then cosine 0.8
    a1, a2, c2 = result.items
    assert a1.score == pytest.approx(0.9) and a2.score == pytest.approx(0.9)
    assert c2.score == pytest.approx(0.72, abs=1e-5)
    assert [(r.kind, r.text, r.source) for r in a1.reasons] == [
        (REASON_CONCEPT, "matches your interest in 'comedies' (genre = Comedy)", "comedies")]
    assert a1.reasons[0].contribution == pytest.approx(0.9)
    assert [(r.kind, r.text, r.source) for r in c2.reasons] == [
        (REASON_CONCEPT, "similar to your interest in 'comedies'", "comedies")]
    assert a2.attributes == {"genre": ("Comedy", "Romance"), "year": ("2005",)}
    assert a2.text == "Title a2. About a2."


def test_concept_weight_scales_affinity() -> None:
    comedies = grounded("comedies", P, E[5], links=[("genre", "Comedy")])
    result = rank(make_index(), concepts=[comedies], k=1, concept_weight=2.5)
    assert result.items[0].score == pytest.approx(2.5)
    assert result.items[0].reasons[0].contribution == pytest.approx(2.5)
    off = rank(make_index(), concepts=[comedies], concept_weight=0.0)
    assert off.strategy == "popular"


def test_each_item_is_explained_by_its_best_positive_concept() -> None:
    comedies = grounded("comedies", P, E[5], links=[("genre", "Comedy")], weight=0.8)
    horror = grounded("horror", P, E[2], links=[("genre", "Horror")], weight=1.0)
    result = rank(make_index(), concepts=[comedies, horror], k=4)
    assert ids(result) == ["b1", "b2", "c1", "t1"]  # 1.0, 1.0 (carriers), then 0.9, 0.9 by id
    by_id = {r.item_id: r for r in result.items}
    assert by_id["b2"].reasons[0].text == "matches your interest in 'horror' (genre = Horror)"
    assert by_id["t1"].reasons[0].text == "similar to your interest in 'horror'"
    rest = rank(make_index(), concepts=[comedies, horror], consumed=["b1", "b2", "t1", "c1"], k=2)
    assert ids(rest) == ["a1", "a2"]
    assert rest.items[0].reasons[0].source == "comedies"
    assert rest.items[0].score == pytest.approx(0.8)


# ---- ties, k, strategies ------------------------------------------------------------------

def test_ties_are_broken_by_item_id_even_at_the_kth_place() -> None:
    rng = np.random.default_rng(0)
    names = [f"x{i:02d}" for i in rng.permutation(40)]
    tied = [item(n, E[0]) for n in names]
    others = [item(f"w{i}", mix(0, 1 + i % 10, 0.5)) for i in range(10)]
    index = make_index(tied + others)
    for k in (1, 7, 39, 40, 45):
        result = rank(index, interest=E[0], k=k)
        expected = sorted(names)[:k] + sorted(o.item_id for o in others)[:max(0, k - 40)]
        assert ids(result) == expected, k


def test_k_larger_than_catalog_returns_every_kept_item() -> None:
    result = rank(make_index(), interest=E[2], k=1000, consumed=["b1"])
    assert len(result.items) == len(CATALOG) - 1
    assert ids(result)[:2] == ["c1", "t1"]  # both 0.9; by id
    scores = [r.score for r in result.items]
    assert scores == sorted(scores, reverse=True)


def test_zero_k_or_nothing_kept_returns_nothing() -> None:
    assert rank(make_index(), k=0).items == []
    assert rank(make_index(), include=[("genre", ["Nope"])]).items == []


@pytest.mark.parametrize(("interest", "positive", "negative", "strategy"), [
    (False, False, False, "popular"),
    (False, False, True, "popular"),
    (True, False, False, "behaviour"),
    (True, False, True, "behaviour"),
    (False, True, False, "concepts"),
    (True, True, False, "behaviour+concepts"),
    (True, True, True, "behaviour+concepts"),
])
def test_strategy(interest: bool, positive: bool, negative: bool, strategy: str) -> None:
    concepts = ([grounded("comedies", P, E[5])] if positive else []) + \
        ([grounded("war", N, E[9])] if negative else [])
    result = rank(make_index(), interest=E[0] if interest else None, concepts=concepts)
    assert result.strategy == strategy
    kinds = {r.kind for it in result.items for r in it.reasons}
    assert (REASON_POPULAR in kinds) == (strategy == "popular")
    assert (REASON_CONCEPT in kinds) == ("concepts" in strategy)


def test_behaviour_plus_concepts_scores_add_and_reasons_sort_by_contribution() -> None:
    comedies = grounded("comedies", P, E[5], links=[("genre", "Comedy")], weight=0.5)
    result = rank(make_index(), interest=E[0], concepts=[comedies],
                  recent=[RecentItem("d1", "liked")], k=2)
    assert ids(result) == ["a1", "a2"]
    a1 = result.items[0]
    assert a1.score == pytest.approx(1.5)  # cosine 1 + 0.5 * affinity 1
    assert [r.kind for r in a1.reasons] == [REASON_RECENT_ITEM, REASON_CONCEPT]
    assert [r.contribution for r in a1.reasons] == pytest.approx([1.0, 0.5])


# ---- cold users ---------------------------------------------------------------------------

def test_cold_user_gets_popularity_order() -> None:
    popularity = {"b1": 10.0, "a2": 5.0, "deleted-item": 8.0, "d1": 2.5}
    result = rank(make_index(), popularity=popularity, k=5)
    assert result.strategy == "popular"
    assert ids(result) == ["b1", "a2", "d1", "a1", "b2"]
    scores = [r.score for r in result.items]
    assert scores == pytest.approx([1.0, 0.5, 0.25, 0.0, 0.0])
    for r in result.items[:3]:
        assert [(x.kind, x.text) for x in r.reasons] == [(REASON_POPULAR,
                                                          "popular with other users")]
    assert result.items[1].reasons[0].contribution == pytest.approx(0.5)
    assert result.items[3].reasons[0].text == CATALOG_ORDER


@pytest.mark.parametrize("popularity", [{}, {"b1": 0.0}, {"zz": 3.0}])
def test_cold_user_without_popularity_gets_catalog_order(popularity: dict) -> None:
    result = rank(make_index(), popularity=popularity)
    assert result.strategy == "popular"
    assert ids(result) == ALL_IDS
    for r in result.items:
        assert [(x.kind, x.text, x.contribution) for x in r.reasons] == [
            (REASON_POPULAR, CATALOG_ORDER, 0.0)]


# ---- behaviour reasons --------------------------------------------------------------------

def test_behaviour_reason_names_the_closest_recent_item() -> None:
    recent = [RecentItem("a1", "liked"), RecentItem("b1", "watched")]
    result = rank(make_index(), interest=mix(2, 0, 0.8), consumed=["a1", "b1"], recent=recent,
                  k=3)
    assert result.strategy == "behaviour"
    assert ids(result)[:2] == ["c1", "t1"]
    reason = result.items[0].reasons
    assert [(r.kind, r.text, r.source) for r in reason] == [
        (REASON_RECENT_ITEM, "because you watched 'Title b1'", "b1")]
    assert reason[0].contribution == pytest.approx(0.72, abs=1e-5)
    third = result.items[2]
    assert third.item_id == "a2"
    assert third.reasons[0].text == "because you liked 'Title a1'"


def test_behaviour_reason_without_known_recent_items() -> None:
    result = rank(make_index(), interest=E[4], recent=[RecentItem("gone", "liked")], k=1)
    assert ids(result) == ["d1"]
    assert [(r.kind, r.text, r.source) for r in result.items[0].reasons] == [
        (REASON_BEHAVIOUR, "close to your recent activity", "")]


def test_short_title() -> None:
    assert short_title("Heat (1995). Crime, Thriller.") == "Heat (1995)"
    assert short_title("No period here") == "No period here"
    assert short_title("Dr. No. Spy film.") == "Dr"


# ---- item index ---------------------------------------------------------------------------

def test_upsert_overwrites_in_place() -> None:
    index = make_index()
    view = index.view()
    index.upsert([item("a1", E[9], genre=("Drama",))])
    assert len(index) == len(CATALOG)
    np.testing.assert_array_equal(index.vector("a1"), E[9])
    new = index.view()
    assert new.n == view.n and new.generation == view.generation
    row = int(index.rows(["a1"], new)[0])
    assert index.describe(row, new)[1] == {"genre": ("Drama",)}
    comedy = index.mask([("genre", "Comedy")], new)
    assert [new.ids[r] for r in np.flatnonzero(comedy)] == ["a2"]
    assert not index.has_attribute_mask("year", new)[row]
    drama = index.mask([("genre", "Drama")], new)
    assert sorted(new.ids[r] for r in np.flatnonzero(drama)) == ["a1", "d1"]
    # A reader's view shares the matrix: it sees the overwritten row, same shape.
    np.testing.assert_array_equal(view.vectors[row], E[9])


def test_growth_keeps_old_views_valid() -> None:
    index = make_index(CATALOG[:2], capacity=2)
    view = index.view()
    index.upsert([item(f"g{i}", E[i % DIM]) for i in range(50)])
    assert index.view().n == 52
    assert view.n == 2
    np.testing.assert_array_equal(index.rows(["a2", "g3"], view), [1])
    assert index.rows_aligned(["g3", "a2", "zz"], view).tolist() == [-1, 1, -1]
    assert index.mask([("genre", "Comedy")], view).tolist() == [True, True]
    # Popularity naming items newer than the view is ignored, not an index error.
    result = Ranker(index).rank(view, None, [], [], [], {"g3": 9.0, "a2": 3.0},
                                RankOptions(k=5, theta=0.5, concept_weight=1.0))
    assert ids(result) == ["a2", "a1"]
    assert result.items[0].score == pytest.approx(1 / 3)


def test_delete_tombstones() -> None:
    index = make_index()
    view = index.view()
    assert index.delete(["b1", "nope", "b1"]) == 1
    assert len(index) == len(CATALOG) - 1
    assert "b1" not in index and "b2" in index
    assert index.vector("b1") is None
    assert view.alive.all()  # an old view keeps its own liveness
    new = index.view()
    assert new.n == view.n and int(new.alive.sum()) == len(CATALOG) - 1
    assert index.rows(["b1"], new).tolist() == []
    assert index.rows_aligned(["b1", "b2"], new).tolist() == [-1, 3]
    horror = index.mask([("genre", "Horror")], new)
    assert [new.ids[r] for r in np.flatnonzero(horror)] == ["b2"]
    assert "b1" not in ids(rank(index))
    # Re-adding a deleted id gives it a fresh row.
    index.upsert([item("b1", E[2], genre=("Horror",))])
    assert index.rows(["b1"], index.view()).tolist() == [len(CATALOG)]


def test_compaction_keeps_lookups_right_and_stales_old_views() -> None:
    total = 2000
    items = [item(f"i{n:04d}", mix(n % DIM, (n + 1) % DIM, 0.6),
                  parity=("even" if n % 2 == 0 else "odd",), name=(f"i{n:04d}",))
             for n in range(total)]
    index = make_index(items, capacity=16)
    old = index.view()
    doomed = [f"i{n:04d}" for n in range(total) if n % 2 == 1 or n < 500]
    assert len(doomed) == 1250
    assert index.delete(doomed[:1024]) == 1024
    index.mask([("parity", "odd")], old)  # 1024 dead is not yet past the threshold
    assert index.delete(doomed[1024:]) == 226
    with pytest.raises(StaleView):
        index.mask([("parity", "even")], old)
    with pytest.raises(StaleView):
        index.rows(["i0600"], old)
    with pytest.raises(StaleView):
        index.has_attribute_mask("parity", old)
    with pytest.raises(StaleView):
        index.describe(0, old)
    with pytest.raises(StaleView):
        Ranker(index).rank(old, E[0], [], ["i0600"], [], {},
                           RankOptions(k=5, theta=0.5, concept_weight=1.0))

    view = index.view()
    survivors = [f"i{n:04d}" for n in range(500, total, 2)]
    assert len(index) == view.n == len(survivors) == 750
    assert view.alive.all()
    assert sorted(view.ids[:view.n]) == survivors
    for name in survivors[::37] + survivors[-1:]:
        n = int(name[1:])
        row = int(index.rows([name], view)[0])
        assert view.ids[row] == name
        np.testing.assert_array_equal(view.vectors[row], mix(n % DIM, (n + 1) % DIM, 0.6))
        assert index.describe(row, view) == (f"Title {name}. About {name}.",
                                             {"parity": ("even",), "name": (name,)})
        assert np.flatnonzero(index.mask([("name", name)], view)).tolist() == [row]
    assert not index.mask([("parity", "odd")], view).any()
    assert index.mask([("parity", "even")], view).all()
    assert index.has_attribute_mask("parity", view).sum() == 750
    assert index.rows(doomed[:3], view).tolist() == []
    result = Ranker(index).rank(view, E[0], [], [], [], {},
                                RankOptions(k=3, theta=0.5, concept_weight=1.0))
    assert all(int(r.item_id[1:]) % DIM == 0 for r in result.items)
    assert ids(result) == ["i0512", "i0528", "i0544"]


def test_vocabulary_embeds_each_new_value_once() -> None:
    calls: list[list[str]] = []

    def embed(values: list[str]) -> np.ndarray:
        calls.append(list(values))
        return np.stack([E[len(v) % DIM] for v in values])

    index = ItemIndex(DIM, embed_values=embed)
    assert index.vocabulary()[0] == [] and index.vocabulary()[1].shape == (0, DIM)
    index.upsert(CATALOG[:3])
    index.upsert(CATALOG[:4])
    pairs, vectors = index.vocabulary()
    assert calls == [["Comedy", "Horror", "Romance", "1999", "2005"], ["Thriller"]]
    assert pairs == sorted(pairs) and len(pairs) == 6
    assert ("genre", "Thriller") in pairs
    np.testing.assert_array_equal(vectors[pairs.index(("genre", "Horror"))], E[6])


# ---- grounding ----------------------------------------------------------------------------

PAIRS = [("genre", "Comedy"), ("genre", "Romance"), ("genre", "Horror"), ("mood", "dark")]
VOCAB = np.stack([E[0], E[1], E[2], E[3]])


@pytest.mark.parametrize(("threshold", "margin", "expected"), [
    (0.5, 0.0, [("genre", "Comedy")]),
    (0.5, 0.25, [("genre", "Comedy"), ("genre", "Romance")]),
    (0.5, 0.1, [("genre", "Comedy")]),
    (0.7, 0.25, [("genre", "Comedy")]),  # Romance is in the margin but under the threshold
    (0.6, 1.0, [("genre", "Comedy"), ("genre", "Romance")]),  # 0.6 is the edge, kept
    (0.81, 1.0, []),
])
def test_ground_threshold_and_margin(threshold: float, margin: float,
                                     expected: list[tuple[str, str]]) -> None:
    romcom = concept("romantic comedies", P, 0.8 * E[0] + 0.6 * E[1])
    out = ground([romcom], PAIRS, VOCAB, threshold, margin)
    assert len(out) == 1 and out[0].concept is romcom
    assert [pair for pair, _ in out[0].links] == expected
    sims = [s for _, s in out[0].links]
    assert sims == sorted(sims, reverse=True)
    assert sims == pytest.approx([0.8, 0.6][:len(sims)], abs=1e-6)


def test_ground_each_concept_separately() -> None:
    concepts = [concept("horror", N, E[2]), concept("space", P, E[9]),
                concept("dark", P, 0.7 * E[3] + 0.71414 * E[2])]
    out = ground(concepts, PAIRS, VOCAB, 0.5, 0.0)
    assert [[pair for pair, _ in g.links] for g in out] == [
        [("genre", "Horror")], [], [("genre", "Horror")]]
    out = ground(concepts, PAIRS, VOCAB, 0.5, 0.05)
    assert [pair for pair, _ in out[2].links] == [("genre", "Horror"), ("mood", "dark")]


def test_ground_without_vocabulary_or_concepts() -> None:
    c = concept("horror", N, E[2])
    assert ground([], PAIRS, VOCAB, 0.5, 0.0) == []
    out = ground([c], [], np.zeros((0, DIM), dtype=np.float32), 0.5, 0.0)
    assert len(out) == 1 and out[0].concept is c and out[0].links == []


def test_grounded_concepts_feed_the_ranker() -> None:
    horror = concept("horror", N, E[2])
    [g] = ground([horror], PAIRS, VOCAB, 0.5, 0.0)
    result = rank(make_index(), concepts=[g])
    assert sorted(ids(result)) == ["a1", "a2", "c2", "d1", "t1"]


@pytest.mark.parametrize(("text", "attributes", "expected"), [
    ("Vertigo (1958)", {"genre": ("Mystery", "Thriller")},
     "Vertigo (1958). genre: Mystery, Thriller"),
    ("Vertigo (1958). Genres: Mystery, Thriller", {"genre": ("Mystery", "Thriller")},
     "Vertigo (1958). Genres: Mystery, Thriller"),
    ("Vertigo (1958). Genres: Mystery.", {"genre": ("Mystery", "Romance"), "year": ("1958",)},
     "Vertigo (1958). Genres: Mystery. genre: Romance"),
    ("Plain text", {}, "Plain text"),
])
def test_embedding_text_adds_only_unmentioned_attribute_values(text, attributes,
                                                               expected) -> None:  # noqa: ANN001
    assert embedding_text(text, attributes) == expected
