"""Rule-based parser splitting a free-text interest description into liked and disliked concepts."""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from typing import Any


class Polarity(enum.IntEnum):
    """Wanted or unwanted; the numbers match the proto enum interest.v1.Polarity."""

    POSITIVE = 1
    NEGATIVE = 2


@dataclass(frozen=True)
class ConceptPhrase:
    """One concept the user named: normalised lower-case phrase, polarity, strength in 0..1."""

    phrase: str
    polarity: Polarity
    weight: float


POS, NEG = Polarity.POSITIVE, Polarity.NEGATIVE
Marker = tuple[Polarity, float]
AttrPair = tuple[str, str]
"""A catalog attribute value a concept can be linked to: (attribute name, value)."""

# Weight (strength 0..1) by class of marker:
#   1.0 strong    love, adore, hate, can't stand, never, anything but, "X are the best"; 爱, 讨厌
#   0.9 emphatic  big fan of, "X is my thing", "X, always"
#   0.8 plain     like, enjoy, prefer, into, fan of, give me, "X are great"; dislike, don't like,
#                 avoid, no, not, except, "X are too slow for me"; 喜欢, 不喜欢, 不爱, 不想看
#   0.6 mild      don't mind, "X are fine"; not a fan of, not into, "X bore me", rather than
#   0.5 bare      a phrase with no marker at all ("Film noir and gritty crime stories.")
# A list item without a marker of its own takes its clause's ("I don't like A, B or C").
# Markers are written as plain text and tokenised like the input, so one table serves English
# and Chinese.
BARE: Marker = (POS, 0.5)

# Markers read at the start of a clause, after fillers: "I really love X", "no X please".
_PREFIX_TEXT: dict[str, Marker] = {
    **dict.fromkeys(["love", "loves", "adore", "adores", "obsessed with", "can't get enough of",
                     "my favourite", "my favourites", "my favourite genre is", "my favourite is",
                     "爱", "热爱", "最爱"], (POS, 1.0)),
    **dict.fromkeys(["big fan of", "huge fan of", "crazy about", "always"], (POS, 0.9)),
    **dict.fromkeys(["like", "likes", "enjoy", "enjoys", "prefer", "prefers", "into", "fan of",
                     "give me", "show me", "more", "want", "want more", "would rather", "rather",
                     "recommend", "looking for", "in the mood for", "keen on", "big on",
                     "interested in", "fond of", "yes", "yes to", "喜欢", "想看", "偏爱"],
                    (POS, 0.8)),
    **dict.fromkeys(["don't mind", "ok with", "okay with", "fine with"], (POS, 0.6)),
    **dict.fromkeys(["hate", "hates", "can't stand", "can not stand", "loathe", "detest",
                     "despise", "never", "anything but", "讨厌", "受不了"], (NEG, 1.0)),
    **dict.fromkeys(["dislike", "dislikes", "don't like", "not like", "don't enjoy", "avoid",
                     "avoids", "no", "no more", "not", "except", "except for", "everything but",
                     "other than", "without", "don't want", "don't show me", "don't recommend",
                     "skip", "nothing", "tired of", "sick of", "stay away from",
                     "not interested in", "never liked", "never like", "never enjoyed", "不喜欢",
                     "不爱", "不想看", "不要", "不看", "除了"], (NEG, 0.8)),
    **dict.fromkeys(["not a fan of", "no fan of", "not big on", "not into", "not crazy about",
                     "not keen on", "don't love", "don't care for", "not fond of", "less", "fewer",
                     "rather than", "instead of", "than", "more than"], (NEG, 0.6)),
}
# Markers read at the end of a clause: "X bore me", "X, always", topic-first Chinese "恐怖片不看".
# Entries starting with "~" need a copula first ("X are great"), so "great" alone inside a
# title is not read as praise.
_SUFFIX_TEXT: dict[str, Marker] = {
    **dict.fromkeys(["~ my favourite", "~ my favourites", "~ the best"], (POS, 1.0)),
    **dict.fromkeys(["~ my thing", "~ my jam", "~ awesome", "~ amazing", "always"], (POS, 0.9)),
    **dict.fromkeys(["~ great", "~ good", "~ fun", "yes", "喜欢"], (POS, 0.8)),
    **dict.fromkeys(["~ fine", "~ ok", "~ okay"], (POS, 0.6)),
    **dict.fromkeys(["~ the worst", "~ terrible", "~ awful", "never", "讨厌"], (NEG, 1.0)),
    **dict.fromkeys(["~ not my thing", "~ not for me", "~ too * for me", "no", "不喜欢", "不看",
                     "不要"], (NEG, 0.8)),
    **dict.fromkeys(["bore me", "bores me", "put me to sleep", "puts me to sleep", "~ boring",
                     "~ overrated", "~ not my cup of tea"], (NEG, 0.6)),
}
_COPULAS = ("is", "are", "was", "were")

# Markers that open a new clause even without a comma: "I like anything but horror",
# "comedies without romance". Each is also a prefix marker.
_SPLIT_BEFORE_TEXT = ["anything but", "everything but", "except", "except for", "other than",
                      "without", "rather than", "instead of", "than", "more than", "除了"]
# Clause connectors. A contrast ends the negation scope, a list connector keeps it, so
# "I don't like musicals, romance or horror" is three dislikes.
_CONTRAST_TEXT = ["but", "though", "although", "however", "whereas", "但是", "但", "可是", "不过",
                  "然而"]
_LIST_TEXT = ["and", "or", "nor", "plus", "as well as", "和", "或", "或者", "还有", "以及"]

# Adverbs may sit inside a marker ("don't really like", "不太喜欢"). English ones are also
# fillers; Chinese ones are characters that also begin nouns (太空 space, 超级 super, 真人 live
# action), so they are skipped only next to a marker ("我很喜欢", "恐怖片我都不看").
_ADVERB_TEXT_EN = ["really", "just", "so", "very", "truly", "totally", "absolutely", "actually",
                   "genuinely", "honestly", "definitely", "seriously", "kinda", "much", "also",
                   "even", "particularly", "especially"]
_ADVERB_TEXT_ZH = ["很", "真的", "非常", "特别", "太", "超", "都", "也", "还", "真", "比较", "最",
                   "一直"]
# Words that carry no concept; stripped from both ends of a clause and of a phrase.
_FILLER_TEXT = _ADVERB_TEXT_EN + [
    "i", "i'm", "am", "i've", "i'd", "we", "we're", "we've", "we'd", "you", "he", "she", "my son",
    "my daughter", "my kids", "my children", "my wife", "my husband", "my partner", "my family",
    "our kids", "the kids", "do", "does", "did", "would", "will", "think", "guess", "generally",
    "usually", "mostly", "mainly", "still", "a", "an", "the", "some", "any", "more", "good", "nice",
    "a lot of", "lots of", "all kinds of", "kind of", "sort of", "to watch", "watch", "watching",
    "to see", "seeing", "please", "kind", "kinds", "type", "types", "sort", "ones", "either",
    "as well", "too", "anymore", "at all", "in general", "thanks", "thank you", "etc",
    "我", "我们", "看", "的", "了", "吧", "呢", "啊", "呀", "一些", "那种", "以外", "之外", "类型",
]
# A phrase made only of these names nothing ("I love them", "anything", "movies"); a marker
# with such a phrase reaches back to the unmarked phrases before it ("Westerns, I love them").
_VAGUE = frozenset([
    "it", "them", "they", "that", "this", "these", "those", "one", "anything", "everything",
    "something", "stuff", "things", "thing", "all", "whatever", "movies", "movie", "films", "film",
    "genres", "genre", "shows", "什么", "所有", "电影", "片",
])
# Word sequences that look like a marker but are a concept: "love stories", 爱情 (romance).
_PROTECTED_TEXT = ["love stories", "love story", "love songs", "爱情"]

# Spelling and contraction variants folded before matching, so tables list one form.
_FOLD = {"favorite": "favourite", "favorites": "favourites",
         "cannot": "can't", "cant": "can't", "dont": "don't", "doesn't": "don't",
         "didn't": "don't", "im": "i'm", "isn't": "is not", "aren't": "are not",
         "wasn't": "was not", "weren't": "were not"}

_TOKEN = re.compile(
    r"[^\W_\u3400-\u9fff\uf900-\ufaff]+(?:['-][^\W_\u3400-\u9fff\uf900-\ufaff]+)*"
    r"|[\u3400-\u9fff\uf900-\ufaff]"  # each Chinese character is a token; tables match sequences
    r"|[.!;。！；…\n]"  # sentence ends
    r"|[,，、:：?？()（）/&+]"  # clause ends; "?" too, so "Romance? Never." stays one thought
)
_SENTENCE_END = frozenset(".!;。！；…\n")
_CLAUSE_END = frozenset(",，、:：?？()（）/&+")
_LIST, _CONTRAST, _SENTENCE = 1, 2, 3  # boundary strength before a clause


def _tokens(text: str) -> list[str]:
    out: list[str] = []
    for tok in _TOKEN.findall(text.lower().replace("’", "'").replace("‘", "'")):
        out.extend(_FOLD.get(tok, tok).split())
    return out


def _is_cjk(tok: str) -> bool:
    return "\u3400" <= tok[0] <= "\u9fff" or "\uf900" <= tok[0] <= "\ufaff"


class _Table:
    """Token sequences with values, matched longest first; adverbs may sit between the words."""

    def __init__(self, entries: dict[str, Any], reverse: bool = False) -> None:
        self._by_first: dict[str, list[tuple[tuple[str, ...], Any]]] = {}
        for text, value in entries.items():
            # "*" is a wildcard for one word ("too * for me"); the tokenizer would drop it
            seq = tuple(t for w in text.split() for t in ([w] if w == "*" else _tokens(w)))
            seq = seq[::-1] if reverse else seq
            self._by_first.setdefault(seq[0], []).append((seq, value))
        for seqs in self._by_first.values():
            seqs.sort(key=lambda sv: -len(sv[0]))

    def match(self, toks: list[str], i: int) -> tuple[int, Any]:
        """Tokens consumed at toks[i:] by the longest matching entry (0 if none), and its value."""
        if i >= len(toks):
            return 0, None
        candidates = self._by_first.get(toks[i], []) + self._by_first.get("*", [])
        for seq, value in candidates:
            j = i
            for k, word in enumerate(seq):
                while k and j < len(toks) and toks[j] in _ADVERBS and toks[j] != word:
                    j += 1
                if j >= len(toks) or (word != "*" and toks[j] != word):
                    break
                j += 1
            else:
                return j - i, value
        return 0, None


def _expand_copulas(entries: dict[str, Marker]) -> dict[str, Marker]:
    out: dict[str, Marker] = {}
    for text, marker in entries.items():
        if text.startswith("~ "):
            out.update({f"{cop} {text[2:]}": marker for cop in _COPULAS})
        else:
            out[text] = marker
    return out


_ADVERBS = frozenset(_ADVERB_TEXT_EN + [t for w in _ADVERB_TEXT_ZH for t in _tokens(w)])
_ZH_ADVERBS = _Table(dict.fromkeys(_ADVERB_TEXT_ZH, True))
_ZH_ADVERBS_REV = _Table(dict.fromkeys(_ADVERB_TEXT_ZH, True), reverse=True)
_PREFIX = _Table(_PREFIX_TEXT)
_SUFFIX = _Table(_expand_copulas(_SUFFIX_TEXT), reverse=True)
_SPLIT_BEFORE = _Table(dict.fromkeys(_SPLIT_BEFORE_TEXT, True))
_CONTRAST_WORDS = _Table(dict.fromkeys(_CONTRAST_TEXT, True))
_LIST_WORDS = _Table(dict.fromkeys(_LIST_TEXT, True))
_FILLERS = _Table(dict.fromkeys(_FILLER_TEXT, True))
_FILLERS_REV = _Table(dict.fromkeys(_FILLER_TEXT, True), reverse=True)
_PROTECTED = _Table(dict.fromkeys(_PROTECTED_TEXT, True))


def _clauses(toks: list[str]) -> list[tuple[int, list[str]]]:
    """Split tokens into clauses, each with the strength of the boundary before it."""
    clauses: list[tuple[int, list[str]]] = []
    current: list[str] = []
    boundary = _SENTENCE

    def close(strength: int) -> None:
        nonlocal current, boundary
        if current:
            clauses.append((boundary, current))
            current, boundary = [], strength
        else:  # ", but" and ". And" count as the stronger of the two
            boundary = max(boundary, strength)

    i = 0
    while i < len(toks):
        tok = toks[i]
        if tok in _SENTENCE_END or tok in _CLAUSE_END:
            close(_SENTENCE if tok in _SENTENCE_END else _LIST)
            i += 1
            continue
        if n := _SPLIT_BEFORE.match(toks, i)[0]:  # before "but", so "anything but" stays whole
            close(_LIST)
            current.extend(toks[i : i + n])
        elif n := _CONTRAST_WORDS.match(toks, i)[0]:
            close(_CONTRAST)
        elif n := _LIST_WORDS.match(toks, i)[0]:
            close(_LIST)
        else:
            current.append(tok)
            n = 1
        i += n
    close(_SENTENCE)
    return clauses


def _skip(table: _Table, toks: list[str], i: int = 0) -> int:
    """Index past the run of table entries starting at toks[i]."""
    while n := table.match(toks, i)[0]:
        i += n
    return i


def _strip(toks: list[str]) -> list[str]:
    """Drop fillers from both ends."""
    start = _skip(_FILLERS, toks)
    return toks[start : len(toks) - _skip(_FILLERS_REV, toks[start:][::-1])]


def _join(toks: list[str]) -> str:
    """Join tokens with spaces, except between Chinese characters."""
    out = ""
    for prev, tok in zip([""] + toks, toks, strict=False):
        out += tok if not prev or (_is_cjk(prev) and _is_cjk(tok)) else " " + tok
    return out


def _read_clause(toks: list[str]) -> tuple[str, Marker | None, bool]:
    """Phrase, marker (None when unmarked) and whether the marker came before the phrase."""
    i, marker = 0, None
    while i < len(toks):
        if marker is None and not _PROTECTED.match(toks, i)[0]:
            n, found = _PREFIX.match(toks, i)
            if n:
                i, marker = i + n, found
                continue
        n = _FILLERS.match(toks, i)[0]
        if not n and marker is None:  # a Chinese adverb only counts right before a marker
            j = _skip(_ZH_ADVERBS, toks, i)
            n = j - i if _PREFIX.match(toks, j)[0] else 0
        if not n:
            break
        i += n
    rest = toks[i:]
    is_prefix = marker is not None
    # Try the suffix on the raw tail first: in "恐怖片不看" the marker ends in a filler (看).
    for tail in ([] if is_prefix else [rest, _strip(rest)]):
        n, marker = _SUFFIX.match(tail[::-1], 0)
        if n:
            rest = tail[: len(tail) - n]
            rest = rest[: len(rest) - _skip(_ZH_ADVERBS_REV, rest[::-1])]
            break
    rest = _strip(rest)
    phrase = _join(rest)
    if phrase in _VAGUE or all(t in _VAGUE for t in rest):  # joined: Chinese words span tokens
        phrase = ""
    return phrase, marker, is_prefix


def parse_concepts(text: str) -> list[ConceptPhrase]:
    """Split a description into concept phrases with polarity and weight; each phrase once."""
    found: dict[str, ConceptPhrase] = {}
    carry: Marker | None = None  # the last marker in this sentence, inherited by bare list items
    pending: list[str] = []  # unmarked phrases waiting for a later marker ("X and Y are my thing")

    def emit(phrase: str, marker: Marker) -> None:
        found[phrase] = ConceptPhrase(phrase, marker[0], marker[1])

    def flush() -> None:
        for phrase in pending:
            emit(phrase, carry or BARE)
        pending.clear()

    for boundary, toks in _clauses(_tokens(text)):
        if boundary >= _CONTRAST:
            flush()
            carry = None
        phrase, marker, is_prefix = _read_clause(toks)
        if marker is None:
            if phrase:
                pending.append(phrase)
            continue
        if is_prefix and phrase:
            flush()
        else:  # "Westerns and war films are my thing", "Romantic comedies, always"
            for earlier in pending:
                emit(earlier, marker)
            pending.clear()
        if phrase:
            emit(phrase, marker)
        carry = marker
    flush()
    return list(found.values())


def merge_concepts(old: list[ConceptPhrase], new: list[ConceptPhrase]) -> list[ConceptPhrase]:
    """Old concepts with restated phrases replaced in place, then the new phrases in order."""
    merged = {c.phrase: c for c in old}
    merged.update((c.phrase, c) for c in new)
    return list(merged.values())
