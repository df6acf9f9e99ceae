"""The item scanner: certified int8 equals the fp32 scan, ANN recall, live writes, filters."""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import pytest
from interest_server.concepts import Polarity
from interest_server.conceptualizer import GroundedConcept, StoredConcept
from interest_server.item_index import CatalogItem, IndexView, ItemIndex
from interest_server.ranking import Ranker, RankOptions, RankResult
from interest_server.scan import Scanner, build_scanner

DIM = 64
GENRES = ("Comedy", "Drama", "Horror", "Romance", "Western", "Noir")


def unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=-1, keepdims=True)).astype(np.float32)


def catalog(n: int, seed: int = 0, clustered: int = 0) -> list[CatalogItem]:
    """n random unit vectors; the first `clustered` are near-duplicates of one direction (their
    scores differ by less than int8 codes resolve, so only the certificate keeps them exact)."""
    rng = np.random.default_rng(seed)
    vectors = unit(rng.standard_normal((n, DIM)))
    if clustered:
        centre = vectors[0]
        vectors[:clustered] = unit(centre + 1e-3 * rng.standard_normal((clustered, DIM)))
    # Genre r % 6, and "Noir" on every 40th item only (a filter that keeps 2.5%).
    return [CatalogItem(f"i{r:05d}", f"Item {r}. About {r}.",
                        {"genre": (GENRES[r % 5],) + (("Noir",) if r % 40 == 0 else ())},
                        vectors[r], "m") for r in range(n)]


def make_index(items: list[CatalogItem], ann: bool = False) -> ItemIndex:
    index = ItemIndex(DIM, embed_values=None, initial_capacity=16, scan_min_items=1000,
                      ann_min_items=1000 if ann else 10**9, background=False)
    index.upsert(items)
    index.build_scanner()
    assert index.scanner_status() == ("ann" if ann else "exact", len(items))
    return index


def exact_view(view: IndexView) -> IndexView:
    return dataclasses.replace(view, scanner=None, delta=None)


def negative(phrase: str, vector: np.ndarray, links: list[tuple[str, str]]) -> GroundedConcept:
    vec = np.asarray(vector, dtype=np.float32)
    return GroundedConcept(StoredConcept(phrase, Polarity.NEGATIVE, 1.0, vec, "m", vec),
                           [(pair, 0.9) for pair in links])


def both(index: ItemIndex, interest: np.ndarray, consumed: list[str] = (),
         concepts: list[GroundedConcept] = (), **opts: object) -> tuple[RankResult, RankResult]:
    """(through the scanner, by the full fp32 scan) on the same view."""
    options = RankOptions(**{"k": 10, "theta": 0.3, "concept_weight": 1.0, **opts})
    view = index.view()
    ranker = Ranker(index)
    got = ranker.rank(view, interest, list(concepts), list(consumed), [], {}, options)
    want = ranker.rank(exact_view(view), interest, list(concepts), list(consumed), [], {},
                       options)
    return got, want


def ids(result: RankResult) -> list[str]:
    return [r.item_id for r in result.items]


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many candidate searches ran (proves the scanner path was taken)."""
    seen: list[int] = []
    real = Scanner.candidates

    def spy(self: Scanner, query: np.ndarray, keep: np.ndarray, want: int):  # type: ignore[no-untyped-def]
        seen.append(want)
        return real(self, query, keep, want)

    monkeypatch.setattr(Scanner, "candidates", spy)
    return seen


# ---- certified int8: exactly the fp32 list -----------------------------------------------

def test_bound_holds_for_every_row_not_proposed() -> None:
    rng = np.random.default_rng(1)
    vectors = unit(rng.standard_normal((5000, DIM)) * rng.uniform(0.1, 3, (1, DIM)))
    scanner = build_scanner(vectors, 0, ann=False)
    for _ in range(20):
        query = rng.standard_normal(DIM).astype(np.float32) * rng.uniform(0.1, 5)
        keep = rng.random(5000) < 0.7
        found = scanner.candidates(query, keep, 50)
        assert found.bound is not None and len(found.rows) == 50 and keep[found.rows].all()
        outside = keep.copy()
        outside[found.rows] = False
        exact = vectors @ query
        assert exact[outside].max() <= found.bound
        # ...and the bound is tight enough to be useful (int8 error is ~1% of |q|).
        assert found.bound - exact[outside].max() < 0.05 * np.linalg.norm(query)


def test_certified_scan_equals_fp32_ranking(calls: list[int]) -> None:
    items = catalog(6000, clustered=1500)
    index = make_index(items)
    rng = np.random.default_rng(2)
    vectors = np.stack([i.vector for i in items])
    queries = [vectors[0], vectors[10] + 1e-4, unit(rng.standard_normal(DIM))]
    queries += [unit(vectors[rng.choice(6000, 20)].sum(axis=0)) for _ in range(10)]
    for n, query in enumerate(queries):
        consumed = [f"i{r:05d}" for r in rng.choice(6000, 20)]
        got, want = both(index, query, consumed, k=10 + n)
        assert ids(got) == ids(want)
        np.testing.assert_allclose([r.score for r in got.items],
                                   [r.score for r in want.items], rtol=1e-6, atol=1e-7)
        assert (got.removed_consumed, got.strategy) == (want.removed_consumed, want.strategy)
    assert len(calls) >= len(queries)
    # The near-duplicates defeat a 256-row int8 shortlist: the certificate asked for more.
    assert max(calls) > 256


def test_certified_scan_honours_filters_and_dislikes(calls: list[int]) -> None:
    items = catalog(6000, seed=3)
    index = make_index(items)
    query = unit(np.stack([i.vector for i in items[:20]]).sum(axis=0))
    cases = [
        {"exclude": [("genre", ["Horror"])], "exclude_item_ids": ["i00021", "i00022"]},
        {"include": [("genre", ["Comedy", "Drama"])]},
        {"include": [("genre", ["Noir"])]},  # 2.5% kept: scored by gathering, exactly
        {"concepts": [negative("romance", items[7].vector, [("genre", "Romance")])]},
        {"concepts": [negative("dark", items[5].vector, [])]},  # ungrounded: cosine >= theta
    ]
    for case in cases:
        got, want = both(index, query, [i.item_id for i in items[:20]], **case)
        assert ids(got) == ids(want) and len(got.items) == 10
        assert (got.removed_by_filters, got.removed_by_dislikes) == (
            want.removed_by_filters, want.removed_by_dislikes)
    noir = both(index, query, include=[("genre", ["Noir"])])[0]
    assert all("Noir" in r.attributes["genre"] for r in noir.items) and len(noir.items) == 10


def test_scores_other_than_behaviour_keep_the_full_scan(calls: list[int]) -> None:
    items = catalog(3000, seed=4)
    index = make_index(items)
    like = GroundedConcept(StoredConcept("x", Polarity.POSITIVE, 1.0, items[3].vector, "m",
                                         items[3].vector), [])
    view = index.view()
    Ranker(index).rank(view, items[1].vector, [like], [], [], {},
                       RankOptions(k=5, theta=0.3, concept_weight=1.0))
    Ranker(index).rank(view, items[1].vector, [], [], [], {},
                       RankOptions(k=5, theta=0.3, concept_weight=1.0), standardise=True)
    Ranker(index).rank(view, None, [], [], [], {"i00001": 1.0},
                       RankOptions(k=5, theta=0.3, concept_weight=1.0))
    assert calls == []


# ---- ANN: recall, live writes, filters ---------------------------------------------------

def test_ann_recall_at_10_on_a_synthetic_set() -> None:
    items = catalog(20_000, seed=5)
    index = make_index(items, ann=True)
    vectors = np.stack([i.vector for i in items])
    rng = np.random.default_rng(6)
    recalls = []
    for _ in range(30):
        liked = rng.choice(len(items), 20, replace=False)
        got, want = both(index, unit(vectors[liked].sum(axis=0)),
                         [items[r].item_id for r in liked])
        recalls.append(len(set(ids(got)) & set(ids(want))) / 10)
    assert np.mean(recalls) >= 0.95, recalls


@pytest.mark.parametrize("ann", [False, True])
def test_writes_after_the_snapshot_are_seen(ann: bool) -> None:
    items = catalog(4000, seed=7)
    index = make_index(items, ann=ann)
    query = unit(items[11].vector + items[12].vector)
    first = ids(both(index, query)[1])
    top = first[0]
    # A new item along the query, an old one moved onto it, the old top moved away.
    index.upsert([CatalogItem("new", "New.", {"genre": ("Drama",)}, query, "m"),
                  dataclasses.replace(items[3000], vector=unit(query + 0.01 * items[5].vector)),
                  dataclasses.replace(items[int(top[1:])], vector=-query)])
    assert index.scanner_status() == ("ann" if ann else "exact", 4000)  # not rebuilt
    got, want = both(index, query)
    assert ids(got)[:2] == ["new", "i03000"] and top not in ids(got)
    if not ann:
        assert ids(got) == ids(want)
    index.delete(["new"])
    got, want = both(index, query)
    assert ids(got)[0] == "i03000" and "new" not in ids(got)
    assert ids(got) == ids(want) or ann


def test_ann_honours_filters() -> None:
    items = catalog(8000, seed=8)
    index = make_index(items, ann=True)
    query = unit(np.stack([i.vector for i in items[:20]]).sum(axis=0))
    consumed = [i.item_id for i in items[:20]]
    got, _ = both(index, query, consumed, include=[("genre", ["Comedy", "Drama"])],
                  exclude_item_ids=["i00025"])
    assert len(got.items) == 10 and "i00025" not in ids(got)
    assert all({"Comedy", "Drama"} & set(r.attributes["genre"]) for r in got.items)
    romance = negative("romance", items[7].vector, [("genre", "Romance")])
    got, want = both(index, query, consumed, concepts=[romance])
    assert all("Romance" not in r.attributes["genre"] for r in got.items)
    assert got.removed_by_dislikes == want.removed_by_dislikes > 0
    # Few rows kept: scored exactly, so even the ANN index returns the exact list.
    got, want = both(index, query, consumed, include=[("genre", ["Noir"])])
    assert ids(got) == ids(want) and len(got.items) == 10


def test_compaction_drops_the_scanner_until_rebuilt() -> None:
    items = catalog(6000, seed=9)
    index = make_index(items)
    index.delete([i.item_id for i in items[::2]])  # past the compaction threshold
    assert index.scanner_status() is None
    query = unit(items[1].vector + items[3].vector)
    got, want = both(index, query)
    assert ids(got) == ids(want) and ids(got)[:2] in (["i00001", "i00003"],
                                                      ["i00003", "i00001"])
    index.build_scanner()
    assert index.scanner_status() == ("exact", 3000)
    got, want = both(index, query)
    assert ids(got) == ids(want)


def test_scanner_is_built_in_the_background_after_writes_pause() -> None:
    index = ItemIndex(DIM, embed_values=None, scan_min_items=1000)
    index.upsert(catalog(1500, seed=10))
    deadline = time.monotonic() + 30
    while index.scanner_status() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert index.scanner_status() == ("exact", 1500)
