"""The concept dataset: the up-front split rule, span offsets, and the shipped file's shape."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from interest_server.model.concepts import Polarity
from interest_server.offline.concept_dataset import (
    build_dataset,
    load_concept_rows,
    resolve_spans,
    split_of,
)
from interest_server.offline.demo_catalog import GENRES as MOVIE_GENRES

MUSIC_GENRES = {"Rock", "Pop", "Jazz", "Classical", "Hip-Hop", "Electronic", "Country", "Blues",
                "Metal", "Folk", "Reggae", "R&B", "Punk", "Soul", "Latin"}


def test_split_rule_is_fixed_by_id() -> None:
    # Frozen values: a change to the rule would move rows between splits after tuning.
    assert [split_of(f"en-mv-{n:03d}") for n in range(1, 9)] == [
        "dev", "dev", "train", "dev", "dev", "train", "train", "train"]
    assert split_of("probe-07") == "dev"
    shares = Counter(split_of(f"row-{n}") for n in range(10_000))
    assert abs(shares["train"] / 10_000 - 0.6) < 0.02
    assert abs(shares["dev"] / 10_000 - 0.2) < 0.02
    assert abs(shares["test"] / 10_000 - 0.2) < 0.02


def test_spans_resolve_to_offsets_and_repeated_text_takes_the_next_occurrence() -> None:
    text = "horror yes, horror no"
    spans = resolve_spans(text, [["horror", "like", 0.8], ["horror", "dislike", 0.8]])
    assert [(s.start, s.end, s.polarity) for s in spans] == [
        (0, 6, Polarity.POSITIVE), (12, 18, Polarity.NEGATIVE)]
    with pytest.raises(ValueError, match="does not occur"):
        resolve_spans(text, [["romance", "like", 0.8]])


def test_build_refuses_duplicate_ids_and_keeps_each_rows_split(tmp_path: Path) -> None:
    row = {"id": "x-1", "lang": "en", "catalog": "movies", "text": "No horror.",
           "like": [], "dislike": ["Horror"], "spans": [["horror", "dislike", 0.8]]}
    raw = tmp_path / "a.jsonl"
    raw.write_text(json.dumps(row) + "\n" + json.dumps(row | {"id": "probe-99"}) + "\n")
    out = tmp_path / "all.jsonl"
    build_dataset([raw], out)
    rows = load_concept_rows(out)
    assert [(r.id, r.split) for r in rows] == [("x-1", split_of("x-1")), ("probe-99", "dev")]
    (tmp_path / "b.jsonl").write_text(json.dumps(row) + "\n")
    with pytest.raises(ValueError, match="duplicate id x-1"):
        build_dataset([raw, tmp_path / "b.jsonl"], out)


def test_shipped_dataset_is_labelled_with_catalog_values_and_holds_the_probes() -> None:
    rows = load_concept_rows()
    ids = {r.id for r in rows}
    assert {f"probe-{n:02d}" for n in range(1, 13)} <= ids
    assert all(r.split == "dev" for r in rows if r.id.startswith("probe-"))
    for r in rows:
        vocabulary = MOVIE_GENRES if r.catalog == "movies" else MUSIC_GENRES
        assert set(r.like) | set(r.dislike) <= vocabulary, r.id
        assert r.spans, r.id
