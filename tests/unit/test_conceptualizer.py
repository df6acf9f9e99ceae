"""Stored concepts: serialisation, merging restated phrases, re-embedding after a model change."""

from __future__ import annotations

import numpy as np
import pytest
from interest_server.model.concepts import ConceptPhrase, Polarity
from interest_server.model.conceptualizer import Conceptualizer, StoredConcept, dumps, loads

P, N = Polarity.POSITIVE, Polarity.NEGATIVE
DIM = 16


class CountingEmbed:
    """A deterministic fake embedding that records every batch it is asked for."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self.calls: list[list[str]] = []

    def __call__(self, texts: list[str]) -> np.ndarray:
        self.calls.append(list(texts))
        return np.stack([self.vector(t) for t in texts]).astype(np.float32)

    def vector(self, text: str) -> np.ndarray:
        rng = np.random.default_rng([self.seed, *text.encode()])
        v = rng.standard_normal(DIM)
        return (v / np.linalg.norm(v)).astype(np.float32)


def make(model: str = "m1") -> tuple[Conceptualizer, CountingEmbed, CountingEmbed]:
    concepts_fn, embed_fn = CountingEmbed(1), CountingEmbed(2)
    return Conceptualizer(concepts_fn, embed_fn, model), concepts_fn, embed_fn


def concept(phrase: str, polarity: Polarity = P, weight: float = 0.8, model: str = "m1",
            seed: int = 0) -> StoredConcept:
    rng = np.random.default_rng([seed, *phrase.encode()])
    return StoredConcept(phrase, polarity, weight, rng.standard_normal(DIM).astype(np.float32),
                         model, rng.standard_normal(DIM).astype(np.float32))


def assert_same(a: list[StoredConcept], b: list[StoredConcept]) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        assert (x.phrase, x.polarity, x.weight, x.model) == (y.phrase, y.polarity, y.weight,
                                                             y.model)
        assert type(x.polarity) is Polarity
        assert x.vector.dtype == np.float32 and x.ground_vector.dtype == np.float32
        np.testing.assert_array_equal(x.vector, y.vector)
        np.testing.assert_array_equal(x.ground_vector, y.ground_vector)


def test_dumps_loads_round_trip_is_exact() -> None:
    rng = np.random.default_rng(5)
    tricky = np.array([np.float32(1) / 3, -0.0, 1e-38, 3.4e38, -1e-45] + [0.0] * (DIM - 5),
                      dtype=np.float32)
    items = [
        concept("mystery films", P, 1.0, "m1"),
        concept("romance", N, 0.6, "old-model"),
        StoredConcept("恐怖片 \"quoted\"", N, 0.123456789, tricky, "m1",
                      rng.standard_normal(DIM).astype(np.float32)),
    ]
    raw = dumps(items)
    assert isinstance(raw, bytes)
    assert_same(loads(raw), items)
    assert_same(loads(dumps(loads(raw))), items)


@pytest.mark.parametrize("raw", [None, b"", b"[]"])
def test_loads_empty(raw: bytes | None) -> None:
    assert loads(raw) == []
    assert dumps([]) == b"[]"


def test_attach_vectors_embeds_each_way_in_one_batch() -> None:
    cz, concepts_fn, embed_fn = make("m1")
    out = cz.attach_vectors([ConceptPhrase("westerns", P, 0.9), ConceptPhrase("horror", N, 1.0)])
    assert concepts_fn.calls == [["westerns", "horror"]]
    assert embed_fn.calls == [["westerns", "horror"]]
    assert [(c.phrase, c.polarity, c.weight, c.model) for c in out] == [
        ("westerns", P, 0.9, "m1"), ("horror", N, 1.0, "m1")]
    np.testing.assert_array_equal(out[0].vector, concepts_fn.vector("westerns"))
    np.testing.assert_array_equal(out[1].ground_vector, embed_fn.vector("horror"))
    assert cz.attach_vectors([]) == []
    assert len(concepts_fn.calls) == 1


def test_encode_uses_the_rewriter() -> None:
    concepts_fn, embed_fn = CountingEmbed(1), CountingEmbed(2)
    cz = Conceptualizer(concepts_fn, embed_fn, "m1",
                        rewrite=lambda text: [ConceptPhrase(text.lower(), N, 0.5)])
    out = cz.encode("ROMANCE")
    assert [(c.phrase, c.polarity, c.weight) for c in out] == [("romance", N, 0.5)]
    default = make()[0].encode("I love mystery films, I hate romance")
    assert {(c.phrase, c.polarity) for c in default} == {("mystery films", P), ("romance", N)}


def test_merge_keeps_unchanged_vectors_and_takes_new_polarity() -> None:
    cz = make("m1")[0]
    old = [concept("westerns", P, 0.9, seed=1), concept("romance", P, 0.8, seed=1),
           concept("horror", N, 1.0, seed=1, model="old")]
    new = [concept("romance", N, 1.0, seed=2), concept("documentaries", P, 0.6, seed=2)]
    merged = cz.merge(old, new)
    assert [(c.phrase, c.polarity, c.weight) for c in merged] == [
        ("westerns", P, 0.9), ("romance", N, 1.0), ("horror", N, 1.0), ("documentaries", P, 0.6)]
    assert merged[0] is not old[0]
    for got, src in [(merged[0], old[0]), (merged[2], old[2]), (merged[1], new[0]),
                     (merged[3], new[1])]:
        assert got.model == src.model
        np.testing.assert_array_equal(got.vector, src.vector)
        np.testing.assert_array_equal(got.ground_vector, src.ground_vector)
    assert cz.merge([], []) == []
    assert_same(cz.merge(old, []), old)


def test_current_reembeds_only_concepts_of_another_model() -> None:
    cz, concepts_fn, embed_fn = make("m2")
    keep_a = concept("westerns", P, 0.9, model="m2")
    stale_b = concept("romance", N, 0.6, model="m1")
    keep_c = concept("horror", N, 1.0, model="m2")
    stale_d = concept("anime", P, 0.8, model="")
    out = cz.current([keep_a, stale_b, keep_c, stale_d])
    assert concepts_fn.calls == [["romance", "anime"]]
    assert embed_fn.calls == [["romance", "anime"]]
    assert out[0] is keep_a and out[2] is keep_c
    assert [(c.phrase, c.polarity, c.weight, c.model) for c in out] == [
        ("westerns", P, 0.9, "m2"), ("romance", N, 0.6, "m2"), ("horror", N, 1.0, "m2"),
        ("anime", P, 0.8, "m2")]
    np.testing.assert_array_equal(out[1].vector, concepts_fn.vector("romance"))
    np.testing.assert_array_equal(out[3].ground_vector, embed_fn.vector("anime"))
    assert not np.array_equal(out[1].vector, stale_b.vector)


def test_current_without_stale_concepts_embeds_nothing() -> None:
    cz, concepts_fn, embed_fn = make("m2")
    items = [concept("westerns", model="m2"), concept("romance", N, model="m2")]
    assert cz.current(items) is items
    assert cz.current([]) == []
    assert concepts_fn.calls == [] and embed_fn.calls == []
