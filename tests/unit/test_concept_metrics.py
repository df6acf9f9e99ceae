"""Span F1, polarity inversions and missed spans (offline/concept_metrics.py), pure logic."""

from __future__ import annotations

from interest_server.model.concepts import Polarity
from interest_server.offline.concept_metrics import (
    locate,
    phrase_spans,
    score_by_lang,
    score_text,
)

POS, NEG = Polarity.POSITIVE, Polarity.NEGATIVE


def test_overlap_with_the_same_polarity_matches() -> None:
    gold = [(0, 10, POS), (20, 30, NEG)]
    counts = score_text(gold, [(5, 8, POS), (25, 40, NEG)])
    assert (counts.precision, counts.recall, counts.f1) == (1.0, 1.0, 1.0)
    assert counts.inversions == 0 and counts.missed == 0


def test_touching_is_not_overlapping() -> None:
    counts = score_text([(0, 10, POS)], [(10, 12, POS)])
    assert counts.correct_predicted == 0 and counts.missed == 1


def test_an_inversion_is_counted_and_is_not_a_match() -> None:
    counts = score_text([(0, 10, NEG), (20, 30, NEG)], [(0, 10, POS), (20, 30, NEG), (40, 45, POS)])
    assert counts.inversions == 1
    assert counts.correct_predicted == 1 and counts.found_gold == 1 and counts.missed == 1
    assert abs(counts.precision - 1 / 3) < 1e-9 and abs(counts.recall - 0.5) < 1e-9
    assert abs(counts.f1 - 0.4) < 1e-9


def test_nothing_predicted_or_nothing_to_find() -> None:
    assert score_text([(0, 3, POS)], []).f1 == 0.0
    empty = score_text([], [])
    assert empty.f1 == 0.0 and empty.missed == 0 and empty.inversions == 0


def test_scores_by_language_and_overall() -> None:
    scores = score_by_lang([
        ("en", [(0, 5, POS)], [(0, 5, POS)]),
        ("fr", [(0, 5, NEG)], [(0, 5, POS)]),
        ("fr", [(0, 5, NEG)], []),
    ])
    assert set(scores) == {"all", "en", "fr"}
    assert scores["en"]["f1"] == 1.0 and scores["en"]["inversions"] == 0
    assert scores["fr"]["f1"] == 0.0 and scores["fr"]["inversions"] == 1
    assert scores["fr"]["missed"] == 2 and scores["all"]["gold"] == 3
    assert scores["all"]["inversions"] == 1 and scores["all"]["texts"] == 3


def test_rule_phrases_are_located_in_the_original_text() -> None:
    text = "I can't stand Horror  Films, but I love sci-fi and 悬疑 电影."
    assert locate(text, "horror films") == (14, 27)
    assert locate(text, "sci-fi") == (text.index("sci-fi"), text.index("sci-fi") + 6)
    assert locate(text, "悬疑电影") == (text.index("悬疑"), text.index("影") + 1)
    assert locate(text, "westerns") is None
    # a repeated phrase takes the next free occurrence; a missing one is an empty span
    spans = phrase_spans("jazz, jazz", [("jazz", POS), ("jazz", NEG), ("blues", POS)])
    assert spans == [(0, 4, POS), (6, 10, NEG), (0, 0, POS)]
