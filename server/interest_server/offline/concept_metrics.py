"""Span-level scores of a concept extractor against hand-labelled spans (pure functions).

A predicted span matches a gold span when they overlap and share polarity. Per text: predicted
spans that match some gold span (precision's numerator), gold spans some prediction matches
(recall's), polarity inversions (a predicted span overlapping a gold span of the opposite
polarity: the worst error, a dislike stored as a like or the reverse) and missed gold spans.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from interest_server.model.concepts import Polarity

Span = tuple[int, int, Polarity]
"""(start, end, polarity) in characters of the text."""


@dataclass
class SpanCounts:
    """Counts over a set of texts; add with +=."""

    texts: int = 0
    gold: int = 0
    predicted: int = 0
    correct_predicted: int = 0  # predicted spans matching a gold span
    found_gold: int = 0  # gold spans matched by a predicted span
    inversions: int = 0  # predicted spans overlapping a gold span of the other polarity

    def __iadd__(self, other: SpanCounts) -> SpanCounts:
        for key in vars(self):
            setattr(self, key, getattr(self, key) + getattr(other, key))
        return self

    @property
    def missed(self) -> int:
        return self.gold - self.found_gold

    @property
    def precision(self) -> float:
        return self.correct_predicted / self.predicted if self.predicted else 0.0

    @property
    def recall(self) -> float:
        return self.found_gold / self.gold if self.gold else 0.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    def summary(self) -> dict[str, float | int]:
        return {"texts": self.texts, "gold": self.gold, "predicted": self.predicted,
                "precision": round(self.precision, 4), "recall": round(self.recall, 4),
                "f1": round(self.f1, 4), "inversions": self.inversions, "missed": self.missed}


def _overlap(a: Span, b: Span) -> bool:
    return a[0] < b[1] and b[0] < a[1]


def score_text(gold: Sequence[Span], predicted: Sequence[Span]) -> SpanCounts:
    """Counts for one text."""
    return SpanCounts(
        texts=1,
        gold=len(gold),
        predicted=len(predicted),
        correct_predicted=sum(any(_overlap(p, g) and p[2] == g[2] for g in gold)
                              for p in predicted),
        found_gold=sum(any(_overlap(p, g) and p[2] == g[2] for p in predicted) for g in gold),
        inversions=sum(any(_overlap(p, g) and p[2] != g[2] for g in gold) for p in predicted),
    )


def score_by_lang(items: Iterable[tuple[str, Sequence[Span], Sequence[Span]]]
                  ) -> dict[str, dict[str, float | int]]:
    """Summaries per language and for "all", from (lang, gold, predicted) per text."""
    totals: dict[str, SpanCounts] = {"all": SpanCounts()}
    for lang, gold, predicted in items:
        counts = score_text(gold, predicted)
        totals.setdefault(lang, SpanCounts())
        totals[lang] += counts
        totals["all"] += counts
    return {lang: c.summary() for lang, c in sorted(totals.items())}


# Words, single CJK characters (the rule parser joins them without spaces) and punctuation marks.
_PIECE = re.compile(r"[\u3040-\u30ff\u3400-\u9fff\uf900-\ufaff\uac00-\ud7af]"
                    r"|[^\W_\u3040-\u30ff\u3400-\u9fff\uf900-\ufaff\uac00-\ud7af]+|[^\w\s]")


def locate(text: str, phrase: str, taken: Sequence[tuple[int, int]] = ()) -> tuple[int, int] | None:
    """Where a normalised phrase (lower-cased, spacing changed, as the rule parser returns it)
    occurs in text: its pieces in order with only spaces/punctuation between; the first
    occurrence not starting inside an already taken range. None when it does not occur."""
    pieces = _PIECE.findall(phrase.lower())
    if not pieces:
        return None
    pattern = re.compile(r"[\W_]*?".join(re.escape(p) for p in pieces), re.IGNORECASE)
    folded = text.replace("’", "'").replace("‘", "'")
    for m in pattern.finditer(folded):
        if not any(s <= m.start() < e for s, e in taken):
            return m.start(), m.end()
    return None


def phrase_spans(text: str, phrases: Iterable[tuple[str, Polarity]]) -> list[Span]:
    """Spans of an extractor's phrases in the text; a phrase not found in the text still counts
    as a prediction, with an empty span that matches nothing."""
    out: list[Span] = []
    taken: list[tuple[int, int]] = []
    for phrase, polarity in phrases:
        where = locate(text, phrase, taken)
        if where is None:
            out.append((0, 0, polarity))
        else:
            taken.append(where)
            out.append((where[0], where[1], polarity))
    return out


def summary_line(name: str, scores: Mapping[str, Mapping[str, float | int]]) -> str:
    """One line per language: F1, inversions, missed."""
    parts = [f"{lang}: F1 {s['f1']:.3f} inv {s['inversions']} missed {s['missed']}/{s['gold']}"
             for lang, s in scores.items()]
    return f"{name:6s} " + " | ".join(parts)
