"""Token tags <-> character spans for the learned concept extractor (pure logic, no model).

Tags are BIO over tokens: O, B-LIKE, I-LIKE, B-DISLIKE, I-DISLIKE. Tokens are grouped into words
by their character offsets, and both directions work per word: a word is inside a span when any of
its characters is, and a decoded word takes the tag of its first token, so no span starts or ends
in the middle of a word ("comédies" is never cut to "comédi").
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

from interest_server.model.concepts import Polarity

LABELS = ("O", "B-LIKE", "I-LIKE", "B-DISLIKE", "I-DISLIKE")
OUTSIDE, B_LIKE, I_LIKE, B_DISLIKE, I_DISLIKE = range(5)
_BEGIN = {Polarity.POSITIVE: B_LIKE, Polarity.NEGATIVE: B_DISLIKE}
_POLARITY = {B_LIKE: Polarity.POSITIVE, I_LIKE: Polarity.POSITIVE,
             B_DISLIKE: Polarity.NEGATIVE, I_DISLIKE: Polarity.NEGATIVE}

Offsets = Sequence[tuple[int, int]]

# Function words that name nothing on their own: a decoded span made only of these (and
# punctuation) is dropped. Small and multilingual on purpose; the head decides the spans, this
# only removes debris such as a lone "the" or "les".
_STOPWORD_TEXT = """
a an the and or but of to in on with for from by at as is are was were be it its this that these
those them they i me my we you he she his her some any all no not very really just so too also
le la les l un une des du de d et ou mais en au aux ce ces je j me moi pas ne
el la los las un una unos unas y o pero de del que lo no muy
der die das den dem des ein eine einen und oder aber von zu mit nicht sehr
的 了 和 或 也 很 都 就 是 我 你 他 她 它 吧 呢 啊
"""
STOPWORDS = frozenset(_STOPWORD_TEXT.split())


@dataclass(frozen=True)
class TaggedSpan:
    """A decoded span: text[start:end], its polarity and strength in 0..1."""

    start: int
    end: int
    polarity: Polarity
    strength: float


def is_cjk(ch: str) -> bool:
    """True for a CJK ideograph, kana or hangul: scripts written without spaces."""
    o = ord(ch)
    return (0x3040 <= o <= 0x30FF or 0x3400 <= o <= 0x9FFF or 0xF900 <= o <= 0xFAFF
            or 0xAC00 <= o <= 0xD7AF)


def _is_punct(text: str) -> bool:
    return all(unicodedata.category(c)[0] in "PSZ" for c in text)


def word_ids(text: str, offsets: Offsets) -> list[int]:
    """The word each token belongs to: tokens touching without a gap form one word, except
    punctuation and CJK characters, which are each a word (as the tokenizer pre-splits them)."""
    out: list[int] = []
    word, prev_end, prev_alone = -1, -1, True
    for start, end in offsets:
        surface = text[start:end]
        alone = not surface or _is_punct(surface) or any(is_cjk(c) for c in surface)
        if start != prev_end or alone or prev_alone:
            word += 1
        out.append(word)
        prev_end, prev_alone = end, alone
    return out


def bio_tags(text: str, offsets: Offsets,
             spans: Sequence[tuple[int, int, Polarity, float]]) -> tuple[list[int], list[float]]:
    """(tag per token, strength per token) for gold spans given as (start, end, polarity,
    strength) character offsets; strength is 0 outside spans. A word overlapping a span is
    inside it; the first token of the span's first word is B-, the rest I-."""
    words = word_ids(text, offsets)
    tags = [OUTSIDE] * len(offsets)
    strength = [0.0] * len(offsets)
    for start, end, polarity, value in sorted(spans, key=lambda s: s[0]):
        inside = {words[k] for k, (s, e) in enumerate(offsets) if s < end and e > start and e > s}
        first = True
        for k, word in enumerate(words):
            if word in inside and tags[k] == OUTSIDE:
                tags[k] = _BEGIN[polarity] if first else _BEGIN[polarity] + 1
                strength[k] = float(value)
                first = False
    return tags, strength


def like_margins(probs: Sequence[Sequence[float]]) -> list[float]:
    """Per token: P(B-LIKE) + P(I-LIKE) - P(B-DISLIKE) - P(I-DISLIKE), from softmaxed tag
    probabilities (tokens, 5); decode() sums these to give a span its polarity."""
    return [float(p[B_LIKE] + p[I_LIKE] - p[B_DISLIKE] - p[I_DISLIKE]) for p in probs]


def decode(text: str, offsets: Offsets, tags: Sequence[int], strength: Sequence[float],
           margins: Sequence[float] | None = None) -> list[TaggedSpan]:
    """Spans from token tags. Each word takes its first token's tag. A span is a run of non-O
    words; a B- tag (either polarity) or an O ends the open one, an I- never does, whatever
    its polarity. The span's polarity is the sign of its tokens' summed like-margins
    (like_margins(); without them each token votes +1/-1 by its tag; a tie goes to the first
    word's tag). Why: a polarity flip inside one phrase ("kids'" read as a dislike, "movies" as a
    like) must not turn one thing into two of opposite signs; the whole phrase gets the reading
    most of it carries. A span's strength is the mean over its tokens. Spans of only
    punctuation and stopwords are dropped."""
    words = word_ids(text, offsets)
    spans: list[TaggedSpan] = []
    cur: list[int] | None = None  # token indices of the open span
    cur_first: Polarity | None = None  # polarity of the open span's first word

    def vote(k: int) -> float:
        if margins is not None:
            return float(margins[k])
        tag = int(tags[k])
        return 0.0 if tag == OUTSIDE else (1.0 if _POLARITY[tag] is Polarity.POSITIVE else -1.0)

    def close() -> None:
        nonlocal cur, cur_first
        if cur:
            start, end = offsets[cur[0]][0], offsets[cur[-1]][1]
            if not is_debris(text[start:end]):
                total = sum(vote(k) for k in cur)
                polarity = (cur_first if total == 0 else
                            Polarity.POSITIVE if total > 0 else Polarity.NEGATIVE)
                mean = sum(strength[k] for k in cur) / len(cur)
                spans.append(TaggedSpan(start, end, polarity, mean))  # type: ignore[arg-type]
        cur, cur_first = None, None

    prev_word = -1
    word_tag = OUTSIDE
    for k, word in enumerate(words):
        if word == prev_word:  # a later piece of the same word: follows the word's first token
            if cur is not None and word_tag != OUTSIDE:
                cur.append(k)
            continue
        prev_word, word_tag = word, int(tags[k])
        if word_tag == OUTSIDE:
            close()
            continue
        if word_tag in (B_LIKE, B_DISLIKE) or cur is None:
            close()
            cur, cur_first = [], _POLARITY[word_tag]
        cur.append(k)
    close()
    return spans


_WORD = re.compile(r"\w+")


def is_debris(span_text: str) -> bool:
    """True when a span holds nothing but punctuation and stopwords."""
    words = [w for w in _WORD.findall(span_text.lower())]
    pieces: list[str] = []
    for w in words:  # CJK runs are checked character by character
        pieces.extend(list(w) if any(is_cjk(c) for c in w) else [w])
    return all(p in STOPWORDS for p in pieces)


def normalise_phrase(span_text: str) -> str:
    """The phrase of a span: whitespace collapsed, lower-cased, edge punctuation stripped."""
    phrase = " ".join(span_text.split()).lower()
    start, end = 0, len(phrase)
    while start < end and _is_punct(phrase[start]):
        start += 1
    while end > start and _is_punct(phrase[end - 1]):
        end -= 1
    return phrase[start:end]
