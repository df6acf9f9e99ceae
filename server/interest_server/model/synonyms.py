"""Attribute synonyms: which catalog attribute values a concept phrase names by a listed word.

Matching is case-insensitive (NFKC, then casefold). A synonym written in a script without
spaces between words (Chinese, Japanese, Korean, Thai, ...) matches as a substring ("悬疑" in
"悬疑电影"); any other synonym matches whole words only, compared word by word ("noir" in "film
noir classics", not in "noirish"; "science-fiction" in "de la science fiction"). A match
inside a longer match is dropped, so "film noir" does not also link what "noir" names.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property

from interest_server.model.concepts import AttrPair

_WORD = re.compile(r"\w+")
# Scripts written without spaces between words, where a synonym can only be found as a
# substring: CJK ideographs, kana, Hangul (whose particles attach to the word), Thai, Lao,
# Khmer, Myanmar, Tibetan.
_UNSPACED = re.compile(
    "[\u0e00-\u0eff\u0f00-\u0fff\u1000-\u109f\u1780-\u17ff\u3040-\u30ff\u3400-\u4dbf"
    "\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff\U00020000-\U0002fa1f]")


def normalise(text: str) -> str:
    """The form both sides are compared in: NFKC (full-width letters fold), then casefold."""
    return unicodedata.normalize("NFKC", text).casefold()


def is_unspaced(synonym: str) -> bool:
    """Whether a synonym is matched as a substring (it holds a character of an unspaced script)."""
    return _UNSPACED.search(synonym) is not None


@dataclass(frozen=True)
class SynonymMatcher:
    """Every synonym of a tenant, indexed for matching phrases."""

    substrings: Mapping[str, tuple[AttrPair, ...]] = field(default_factory=dict)
    """Normalised unspaced synonym -> the values it names."""
    words: Mapping[tuple[str, ...], tuple[AttrPair, ...]] = field(default_factory=dict)
    """A spaced synonym's normalised words -> the values it names."""

    @classmethod
    def build(cls, table: Iterable[tuple[AttrPair, Sequence[str]]]) -> SynonymMatcher:
        """From (attribute, value) -> synonyms, as SynonymStore.load returns them."""
        substrings: dict[str, list[AttrPair]] = {}
        words: dict[tuple[str, ...], list[AttrPair]] = {}
        for pair, synonyms in table:
            for synonym in synonyms:
                norm = normalise(synonym).strip()
                if not norm:
                    continue
                if is_unspaced(norm):
                    substrings.setdefault(norm, []).append(pair)
                elif key := tuple(_WORD.findall(norm)):
                    words.setdefault(key, []).append(pair)
        return cls({k: tuple(dict.fromkeys(v)) for k, v in substrings.items()},
                   {k: tuple(dict.fromkeys(v)) for k, v in words.items()})

    @cached_property
    def lengths(self) -> list[int]:
        """The distinct lengths of the unspaced synonyms."""
        return sorted({len(k) for k in self.substrings})

    def __len__(self) -> int:
        return len(self.substrings) + len(self.words)

    def match(self, phrase: str) -> list[AttrPair]:
        """The attribute values a phrase names by synonym, in order of first appearance."""
        if not self:
            return []
        text = normalise(phrase)
        spans: list[tuple[int, int, tuple[AttrPair, ...]]] = []
        # Dictionary lookups of the text's substrings of each synonym length: the cost grows
        # with the phrase, not with the number of synonyms (up to max_synonyms_per_tenant).
        for length in self.lengths:
            for start in range(len(text) - length + 1):
                pairs = self.substrings.get(text[start:start + length])
                if pairs:
                    spans.append((start, start + length, pairs))
        if self.words:
            tokens = list(_WORD.finditer(text))
            longest = max(len(k) for k in self.words)
            for i in range(len(tokens)):
                for n in range(1, min(longest, len(tokens) - i) + 1):
                    pairs = self.words.get(tuple(t.group() for t in tokens[i:i + n]))
                    if pairs:
                        spans.append((tokens[i].start(), tokens[i + n - 1].end(), pairs))
        # Longest first, so a span inside an already kept one is recognised and dropped.
        spans.sort(key=lambda s: (s[0] - s[1], s[0]))
        kept: list[tuple[int, int, tuple[AttrPair, ...]]] = []
        for start, end, pairs in spans:
            if not any(k[0] <= start and end <= k[1] and (k[0], k[1]) != (start, end)
                       for k in kept):
                kept.append((start, end, pairs))
        kept.sort()
        return list(dict.fromkeys(p for _, _, pairs in kept for p in pairs))


EMPTY = SynonymMatcher()
"""No synonyms."""
