"""Attribute masks kept by the item index across upserts, deletes, growth and compaction, and the
dislike filter's cosine fallback computed only where the grounded attribute does not reach."""

from __future__ import annotations

import random

import numpy as np
import pytest
from interest_server.model.concepts import Polarity
from interest_server.model.conceptualizer import GroundedConcept, StoredConcept
from interest_server.recommend.item_index import CatalogItem, IndexView, ItemIndex
from interest_server.recommend.ranking import Ranker, RankOptions

DIM = 8
NAMES = ("genre", "year", "tag")
VALUES = {"genre": ("Comedy", "Drama", "Horror", "Romance"), "year": ("1999", "2005"),
          "tag": ("a", "b", "c")}


def random_item(rng: random.Random, item_id: str) -> CatalogItem:
    attributes = {}
    for name in NAMES:
        if rng.random() < 0.7:
            # An empty value list still counts as "has the attribute".
            attributes[name] = tuple(rng.sample(VALUES[name], rng.randrange(0, 3)))
    vec = np.asarray([rng.gauss(0, 1) for _ in range(DIM)], dtype=np.float32)
    return CatalogItem(item_id, item_id, attributes, vec / np.linalg.norm(vec), "m")


def expected(live: dict[str, CatalogItem], view: IndexView, pairs: list[tuple[str, str]] = (),
             name: str | None = None) -> np.ndarray:
    out = np.zeros(view.n, dtype=bool)
    for row, item_id in enumerate(view.ids[: view.n]):
        it = live.get(item_id)
        if it is None or not view.alive[row]:
            continue
        if name is not None:
            out[row] = name in it.attributes
        else:
            out[row] = any(v in it.attributes.get(k, ()) for k, v in pairs)
    return out


@pytest.mark.parametrize("seed", range(4))
def test_masks_follow_upserts_deletes_growth_and_compaction(seed: int) -> None:
    rng = random.Random(seed)
    index = ItemIndex(DIM, embed_values=None, initial_capacity=4)
    live: dict[str, CatalogItem] = {}
    generation = index.view().generation
    for step in range(60):
        ops = rng.random()
        if ops < 0.6 or not live:
            batch = [random_item(rng, f"i{rng.randrange(3000)}")
                     for _ in range(rng.randrange(1, 80))]
            index.upsert(batch)
            live.update({it.item_id: it for it in batch})
        else:
            doomed = rng.sample(sorted(live), min(len(live), rng.randrange(1, 700)))
            assert index.delete(doomed) == len(doomed)
            for item_id in doomed:
                del live[item_id]
        view = index.view()
        generation = max(generation, view.generation)
        for name in (*NAMES, "missing"):
            got = index.has_attribute_mask(name, view)
            np.testing.assert_array_equal(got & view.alive, expected(live, view, name=name))
        for _ in range(4):
            name = rng.choice(NAMES)
            pairs = [(name, v) for v in rng.sample(VALUES[name], rng.randrange(1, 3))]
            pairs.append(("genre", "Unknown value"))  # never seen: matches nothing, no error
            got = index.mask(pairs, view)
            np.testing.assert_array_equal(got & view.alive, expected(live, view, pairs), str(step))
            # Read twice: the cached row arrays give the same answer.
            np.testing.assert_array_equal(index.mask(pairs, view), got)
    assert generation > 0, "the random walk should have compacted at least once"


def test_masks_of_an_old_view_stop_at_its_rows() -> None:
    index = ItemIndex(DIM, embed_values=None, initial_capacity=2)
    rng = random.Random(7)
    first = [random_item(rng, f"a{n}") for n in range(5)]
    index.upsert(first)
    old = index.view()
    index.upsert([CatalogItem(f"b{n}", "", {"genre": ("Drama",), "year": ()},
                              np.ones(DIM, dtype=np.float32) / DIM ** 0.5, "m")
                  for n in range(50)])  # grows the matrix past the old view
    assert index.mask([("genre", "Drama")], old).shape == (old.n,)
    assert index.has_attribute_mask("year", old).shape == (old.n,)
    new = index.view()
    assert index.mask([("genre", "Drama")], new)[old.n:].all()
    assert index.has_attribute_mask("year", new)[old.n:].all()


class CountingMatrix(np.ndarray):
    """An item matrix that records the number of rows of every matrix-vector product."""

    products: list[int]

    def __matmul__(self, other: np.ndarray) -> np.ndarray:
        type(self).products.append(self.shape[0])
        return np.asarray(self) @ other


def counting_view(index: ItemIndex) -> IndexView:
    view = index.view()
    CountingMatrix.products = []
    vectors = np.asarray(view.vectors).view(CountingMatrix)
    return IndexView(vectors, view.alive, view.ids, view.n, view.generation)


def negative(vector: np.ndarray, links: list[tuple[str, str]]) -> GroundedConcept:
    vec = np.asarray(vector, dtype=np.float32)
    return GroundedConcept(StoredConcept("x", Polarity.NEGATIVE, 1.0, vec, "m", vec),
                           [(pair, 0.9) for pair in links])


def reference_dislike(view: IndexView, index: ItemIndex, g: GroundedConcept,
                      theta: float) -> np.ndarray:
    """The filter as first written: full similarity, then the attribute decides where it can."""
    similar = (np.asarray(view.vectors) @ g.concept.vector) >= theta
    if not g.links:
        return similar
    carries = index.mask([p for p, _ in g.links], view)
    covered = np.zeros(view.n, dtype=bool)
    for name in {n for (n, _), _ in g.links}:
        covered |= index.has_attribute_mask(name, view)
    return carries | (similar & ~covered)


def catalog(n: int, uncovered_every: int, seed: int = 0) -> ItemIndex:
    """n items with a genre, except every `uncovered_every`-th (0: none uncovered)."""
    rng = np.random.default_rng(seed)
    vecs = rng.standard_normal((n, DIM)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    genres = ("Comedy", "Drama", "Romance")
    items = [CatalogItem(f"i{k:05d}", "", {} if uncovered_every and k % uncovered_every == 0
                         else {"genre": (genres[k % 3],)}, vecs[k], "m") for k in range(n)]
    index = ItemIndex(DIM, embed_values=None)
    index.upsert(items)
    return index


def test_fully_covered_dislike_runs_no_similarity_product() -> None:
    index = catalog(3000, uncovered_every=0)
    view = counting_view(index)
    g = negative(np.ones(DIM) / DIM ** 0.5, [("genre", "Romance")])
    got = Ranker(index)._dislike_mask(view, g, theta=-1.0)  # every cosine would pass theta
    assert CountingMatrix.products == []
    np.testing.assert_array_equal(got, index.mask([("genre", "Romance")], view))
    np.testing.assert_array_equal(got, reference_dislike(view, index, g, -1.0))


@pytest.mark.parametrize(("uncovered_every", "rows_scanned"), [(100, 30), (2, 3000)])
def test_partly_covered_dislike_scans_only_what_it_must(uncovered_every: int,
                                                        rows_scanned: int) -> None:
    index = catalog(3000, uncovered_every)
    g = negative(np.eye(DIM)[0], [("genre", "Romance")])
    for theta in (-1.0, 0.0, 0.3, 0.9):
        view = counting_view(index)
        got = Ranker(index)._dislike_mask(view, g, theta)
        # Few uncovered rows: only those are scanned; many: one full product.
        assert CountingMatrix.products == [rows_scanned]
        np.testing.assert_array_equal(got, reference_dislike(view, index, g, theta))


def test_dislike_mask_matches_the_reference_within_candidates() -> None:
    index = catalog(2000, uncovered_every=9, seed=3)
    index.delete([f"i{k:05d}" for k in range(0, 2000, 7)])
    view = index.view()
    keep = view.alive.copy()
    keep[::5] = False
    for links in ([("genre", "Romance")], [("genre", "Romance"), ("genre", "Drama")], []):
        g = negative(np.eye(DIM)[1], links)
        want = reference_dislike(view, index, g, 0.2)
        got = Ranker(index)._dislike_mask(view, g, 0.2, keep)
        np.testing.assert_array_equal(got & keep, want & keep)
        np.testing.assert_array_equal(Ranker(index)._dislike_mask(view, g, 0.2) & view.alive,
                                      want & view.alive)


def test_rank_counts_with_a_fully_covered_dislike() -> None:
    index = catalog(600, uncovered_every=0)
    g = negative(np.ones(DIM) / DIM ** 0.5, [("genre", "Romance")])
    result = Ranker(index).rank(index.view(), np.eye(DIM, dtype=np.float32)[0], [g], [], [], {},
                                RankOptions(k=1000, theta=-1.0, concept_weight=1.0))
    assert result.removed_by_dislikes == 200
    assert len(result.items) == 400
    assert all("Romance" not in r.attributes.get("genre", ()) for r in result.items)
