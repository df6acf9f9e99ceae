"""BIO tags from character spans and spans from tags (model/concept_spans.py), pure logic."""

from __future__ import annotations

import re

from interest_server.model.concept_spans import (
    B_DISLIKE,
    B_LIKE,
    I_DISLIKE,
    I_LIKE,
    OUTSIDE,
    bio_tags,
    decode,
    is_debris,
    like_margins,
    normalise_phrase,
    word_ids,
)
from interest_server.model.concepts import Polarity

POS, NEG = Polarity.POSITIVE, Polarity.NEGATIVE
N = OUTSIDE  # short, for the tag lists below


def offsets_of(text: str, pieces: list[str]) -> list[tuple[int, int]]:
    """Offsets of the given token pieces, found left to right (a stand-in for a tokenizer)."""
    out, at = [], 0
    for piece in pieces:
        start = text.index(piece, at)
        out.append((start, start + len(piece)))
        at = start + len(piece)
    return out


TEXT = "I adore comedies but hate horror films."
PIECES = ["i", "ado", "re", "come", "dies", "but", "hate", "horror", "films", "."]


def test_word_ids_join_touching_pieces_but_not_punctuation_or_cjk() -> None:
    text = TEXT.lower()
    assert word_ids(text, offsets_of(text, PIECES)) == [0, 1, 1, 2, 2, 3, 4, 5, 6, 7]
    zh = "喜欢悬疑"
    assert word_ids(zh, [(0, 1), (1, 2), (2, 3), (3, 4)]) == [0, 1, 2, 3]
    fr = "d'horreur"
    assert word_ids(fr, [(0, 1), (1, 2), (2, 4), (4, 9)]) == [0, 1, 2, 2]


def test_bio_tags_cover_whole_words_from_character_offsets() -> None:
    text = TEXT.lower()
    offsets = offsets_of(text, PIECES)
    # a gold span ending inside a word ("comed") still tags the whole word
    spans = [(text.index("comed"), text.index("comed") + 5, POS, 1.0),
             (text.index("horror"), text.index("films") + 5, NEG, 0.8)]
    tags, strength = bio_tags(text, offsets, spans)
    assert tags == [N, N, N, B_LIKE, I_LIKE, N, N, B_DISLIKE, I_DISLIKE, N]
    assert strength == [0, 0, 0, 1.0, 1.0, 0, 0, 0.8, 0.8, 0]
    # a span inside a single piece ("ome" of "come") still tags its whole word
    at = text.index("ome")
    tags, _ = bio_tags(text, offsets, [(at, at + 3, POS, 1.0)])
    assert tags == [N, N, N, B_LIKE, I_LIKE, N, N, N, N, N]


def test_adjacent_spans_each_begin() -> None:
    text = "jazz blues"
    offsets = [(0, 4), (5, 10)]
    tags, _ = bio_tags(text, offsets, [(0, 4, POS, 1.0), (5, 10, POS, 1.0)])
    assert tags == [B_LIKE, B_LIKE]
    spans = decode(text, offsets, tags, [1.0, 1.0])
    assert [(s.start, s.end) for s in spans] == [(0, 4), (5, 10)]


def test_decode_round_trips_tags_and_averages_strength() -> None:
    text = TEXT.lower()
    offsets = offsets_of(text, PIECES)
    tags = [N, N, N, B_LIKE, I_LIKE, N, N, B_DISLIKE, I_DISLIKE, N]
    strength = [0, 0, 0, 0.9, 0.7, 0, 0, 1.0, 0.6, 0]
    spans = decode(text, offsets, tags, strength)
    assert [(text[s.start : s.end], s.polarity) for s in spans] == [
        ("comedies", POS), ("horror films", NEG)]
    assert abs(spans[0].strength - 0.8) < 1e-9 and abs(spans[1].strength - 0.8) < 1e-9


def test_an_inside_tag_without_a_begin_starts_a_span_and_only_a_begin_or_o_ends_it() -> None:
    text = "horror films"
    offsets = [(0, 6), (7, 12)]
    spans = decode(text, offsets, [I_DISLIKE, I_DISLIKE], [1.0, 1.0])
    assert [(s.start, s.end, s.polarity) for s in spans] == [(0, 12, NEG)]
    # An I- of the other polarity continues the span (this used to split it in two); the votes
    # tie, so the first word's polarity stands.
    spans = decode(text, offsets, [I_DISLIKE, I_LIKE], [1.0, 1.0])
    assert [(s.start, s.end, s.polarity) for s in spans] == [(0, 12, NEG)]
    # A B- of either polarity still starts a new span.
    spans = decode(text, offsets, [B_DISLIKE, B_LIKE], [1.0, 1.0])
    assert [(s.start, s.end, s.polarity) for s in spans] == [(0, 6, NEG), (7, 12, POS)]


def test_a_polarity_flip_inside_a_phrase_gives_one_span_with_the_summed_polarity() -> None:
    text = "no kids' movies"
    offsets = offsets_of(text, ["no", "kids", "'", "movies"])
    tags = [N, B_DISLIKE, I_DISLIKE, I_LIKE]
    sure_dislike = like_margins([[1, 0, 0, 0, 0], [0, 0.1, 0, 0.9, 0], [0, 0, 0.2, 0, 0.8],
                                 [0, 0, 0.6, 0, 0.4]])
    assert [round(m, 6) for m in sure_dislike] == [0.0, -0.8, -0.6, 0.2]
    spans = decode(text, offsets, tags, [1.0] * 4, sure_dislike)
    assert [(text[s.start : s.end], s.polarity) for s in spans] == [("kids' movies", NEG)]
    # The same tags, but the head is far surer of the like on the noun: the whole phrase likes.
    unsure_dislike = [0.0, -0.1, -0.1, 0.9]
    spans = decode(text, offsets, tags, [1.0] * 4, unsure_dislike)
    assert [(text[s.start : s.end], s.polarity) for s in spans] == [("kids' movies", POS)]
    # Without margins each token votes by its tag: two dislikes outvote one like.
    spans = decode(text, offsets, tags, [1.0] * 4)
    assert [(text[s.start : s.end], s.polarity) for s in spans] == [("kids' movies", NEG)]


def test_later_pieces_of_a_word_follow_its_first_piece() -> None:
    text = TEXT.lower()
    offsets = offsets_of(text, PIECES)
    # "come" is B-LIKE but "dies" says N, and "ado" is O but "re" says B-LIKE: whole words only
    tags = [N, N, B_LIKE, B_LIKE, N, N, N, N, N, N]
    spans = decode(text, offsets, tags, [1.0] * len(PIECES))
    assert [text[s.start : s.end] for s in spans] == ["comedies"]


def test_stopword_and_punctuation_spans_are_dropped() -> None:
    text = "the , les 的"
    offsets = [(0, 3), (4, 5), (6, 9), (10, 11)]
    for k in range(4):
        tags = [N] * 4
        tags[k] = B_DISLIKE
        assert decode(text, offsets, tags, [1.0] * 4) == []
    assert is_debris("the, and") and not is_debris("the jazz") and not is_debris("悬疑")


def test_normalise_phrase() -> None:
    assert normalise_phrase("  Films\n d'Horreur!! ") == "films d'horreur"
    assert normalise_phrase("«Jazz»") == "jazz"
    assert not re.search(r"\s{2}", normalise_phrase("sci   fi"))
