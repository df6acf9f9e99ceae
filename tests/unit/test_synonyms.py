"""The synonym matching rule, grounding with synonyms, the shipped MovieLens synonyms, and the
client's mapping of a synonyms file to request entries."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from interest_client.client import synonym_entries
from interest_server.model import conceptualizer as cz
from interest_server.model.concepts import Polarity
from interest_server.model.synonyms import SynonymMatcher, is_unspaced
from interest_server.offline.demo_catalog import GENRES

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "examples" / "movielens" / "synonyms.json"
MYSTERY, ROMANCE, NOIR, DRAMA, SCI_FI = (("genre", g) for g in (
    "Mystery", "Romance", "Film-Noir", "Drama", "Sci-Fi"))


def matcher() -> SynonymMatcher:
    return SynonymMatcher.build([
        (MYSTERY, ["悬疑", "Policier", "ＭＹＳＴÈＲＥ"]), (ROMANCE, ["爱情", "d'amour", "로맨스"]),
        (NOIR, ["film noir"]), (DRAMA, ["noir"]), (SCI_FI, ["science-fiction", "SF"])])


@pytest.mark.parametrize("phrase, expected", [
    # Unspaced scripts: a substring anywhere, however the phrase is split.
    ("悬疑电影", [MYSTERY]),
    ("喜欢悬疑电影，讨厌爱情电影", [MYSTERY, ROMANCE]),
    ("爱情", [ROMANCE]),
    ("로맨스영화", [ROMANCE]),  # Korean particles and compounds attach to the word
    # Spaced scripts: whole words, case-insensitive, NFKC-folded.
    ("un POLICIER", [MYSTERY]),
    ("les policiers", []),  # another word, not a match: the list names the forms it wants
    ("impolicier", []),
    ("mystère", [MYSTERY]),  # full-width letters in the synonym fold to plain ones
    ("des films d’amour", [ROMANCE]),  # either apostrophe
    ("science fiction", [SCI_FI]),
    ("sf", [SCI_FI]),
    ("sfx", []),
    # The longer match wins over one inside it; separate matches are all kept, in order.
    ("film noir classics", [NOIR]),
    ("noir et blanc", [DRAMA]),
    ("noir, film noir", [DRAMA, NOIR]),
    ("", []),
])
def test_matching_rule(phrase: str, expected: list[tuple[str, str]]) -> None:
    assert matcher().match(phrase) == expected


def test_unspaced_scripts() -> None:
    assert all(is_unspaced(s) for s in ("悬疑", "ミステリー", "로맨스", "ความรัก", "SF悬疑"))
    assert not any(is_unspaced(s) for s in ("policier", "романтика", "رومانسي", "film-noir"))


def test_no_synonyms_match_nothing() -> None:
    empty = SynonymMatcher.build([])
    assert not empty and empty.match("悬疑电影") == []
    assert SynonymMatcher.build([(MYSTERY, ["", "  "])]).match("悬疑") == []


def concept(phrase: str, ground_vector: list[float]) -> cz.StoredConcept:
    vec = np.asarray(ground_vector, dtype=np.float32)
    return cz.StoredConcept(phrase, Polarity.POSITIVE, 0.8, vec, "m", vec)


def test_a_synonym_match_wins_over_embedding_similarity() -> None:
    pairs = [MYSTERY, ROMANCE, DRAMA]
    vocab = np.eye(3, dtype=np.float32)
    # The vector points at Drama, the phrase names Mystery by synonym: the synonym wins, alone.
    named = concept("悬疑电影", [0.0, 0.0, 1.0])
    plain = concept("something else", [0.0, 0.0, 1.0])
    unknown = concept("film noir", [0.0, 0.0, 1.0])  # Film-Noir: no item carries it
    got = cz.ground([named, plain, unknown], pairs, vocab, 0.5, 0.05, matcher())
    assert got[0].links == [(MYSTERY, 1.0)]
    assert got[1].links == [(DRAMA, 1.0)]  # embedding similarity, as without synonyms
    assert got[2].links == [(DRAMA, 1.0)]  # a synonym of a value not in the catalog is ignored
    # Without synonyms the same concept goes by its vector.
    assert cz.ground([named], pairs, vocab, 0.5, 0.05)[0].links == [(DRAMA, 1.0)]


def test_the_shipped_movielens_synonyms() -> None:
    """Every MovieLens genre in Chinese and French, and no English: English understanding must
    come from the model, not from a list."""
    mapping = json.loads(SHIPPED.read_text(encoding="utf-8"))
    assert set(mapping) == {"genre"} and set(mapping["genre"]) == GENRES
    english = {g.casefold() for g in GENRES} | {
        "comedies", "romances", "thrillers", "westerns", "musicals", "dramas", "documentaries",
        "children", "kids", "family", "science fiction", "science-fiction", "scifi", "sci fi",
        "film noir", "noir", "mysteries", "horrors", "war films", "wars", "cartoon", "cartoons",
        "detective", "suspense", "love", "romantic", "fantastic", "adventures", "animated",
        "crimes", "action films", "action movies"}
    matcher = SynonymMatcher.build([(("genre", g), s) for g, s in mapping["genre"].items()])
    for genre, synonyms in mapping["genre"].items():
        assert any(is_unspaced(s) for s in synonyms), f"{genre}: no Chinese synonym"
        assert any(not is_unspaced(s) for s in synonyms), f"{genre}: no French synonym"
        for synonym in synonyms:
            assert synonym.casefold() not in english, f"{genre}: {synonym!r} is English"
        # No English word list names the genre through this file.
        for word in english:
            assert matcher.match(word) == [], word
    assert matcher.match("喜欢悬疑电影") == [("genre", "Mystery")]
    assert matcher.match("讨厌爱情电影") == [("genre", "Romance")]
    assert matcher.match("j'adore les films d'horreur") == [("genre", "Horror")]
    assert matcher.match("une comédie musicale") == [("genre", "Musical")]  # not also Comedy


def test_the_client_maps_a_synonyms_file_to_entries() -> None:
    entries = synonym_entries({"genre": {"Mystery": ["悬疑"], "Romance": []}})
    assert [(e.attribute, e.value, list(e.synonyms)) for e in entries] == [
        ("genre", "Mystery", ["悬疑"]), ("genre", "Romance", [])]
    for bad in (["genre"], {"genre": ["Mystery"]}, {"genre": {"Mystery": "悬疑"}},
                {"genre": {"Mystery": [1]}}):
        with pytest.raises(TypeError):
            synonym_entries(bad)
