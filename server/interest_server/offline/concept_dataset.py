"""The hand-labelled concept dataset: descriptions with the attribute values they like and dislike.

Rows are written by people (never generated from a template) in `concept_data/raw/*.jsonl` and
merged once into `concept_data/descriptions.jsonl` by `build_dataset`, which fixes each row's split
before any extractor is built (data discipline: tune on dev, score test once):

- the 12 public probes (ids "probe-NN") go to dev;
- every other row goes by the SHA-256 of its id: the first 8 hex digits as a fraction of 2**32,
  < 0.6 train, < 0.8 dev, else test. A row keeps its split whatever else is added later.

Spans name the thing liked or disliked as written ("horror films" in "I can't stand horror
films"); they are given as text and resolved to character offsets here, the first occurrence not
already taken by an earlier span of the same row.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from interest_server.model.concepts import Polarity

DATASET_RESOURCE = "concept_data/descriptions.jsonl"
SPLITS = ("train", "dev", "test")
PROBE_PREFIX = "probe-"
_POLARITY = {"like": Polarity.POSITIVE, "dislike": Polarity.NEGATIVE}


@dataclass(frozen=True, slots=True)
class ConceptSpan:
    """One stated preference: text[start:end] is the thing, with its polarity and strength."""

    start: int
    end: int
    polarity: Polarity
    strength: float


@dataclass(frozen=True, slots=True)
class ConceptRow:
    """One description and its labels."""

    id: str
    split: str
    lang: str
    catalog: str
    text: str
    like: tuple[str, ...]
    dislike: tuple[str, ...]
    spans: tuple[ConceptSpan, ...]


def split_of(row_id: str) -> str:
    """The split a row belongs to, from its id alone (see the module docstring)."""
    if row_id.startswith(PROBE_PREFIX):
        return "dev"
    fraction = int(hashlib.sha256(row_id.encode()).hexdigest()[:8], 16) / 2**32
    return "train" if fraction < 0.6 else "dev" if fraction < 0.8 else "test"


def resolve_spans(text: str, spans: Iterable[tuple[str, str, float]]) -> tuple[ConceptSpan, ...]:
    """Character offsets of each span text; ValueError when one does not occur in `text`."""
    taken: list[tuple[int, int]] = []
    out = []
    for phrase, polarity, strength in spans:
        start = text.find(phrase)
        while start >= 0 and any(s <= start < e for s, e in taken):
            start = text.find(phrase, start + 1)
        if not phrase or start < 0:
            raise ValueError(f"span {phrase!r} does not occur in {text!r}")
        taken.append((start, start + len(phrase)))
        out.append(ConceptSpan(start, start + len(phrase), _POLARITY[polarity], float(strength)))
    return tuple(sorted(out, key=lambda s: s.start))


def parse_row(raw: dict) -> ConceptRow:
    """A row of descriptions.jsonl (or of a raw file, given a split)."""
    return ConceptRow(
        id=raw["id"], split=raw.get("split") or split_of(raw["id"]), lang=raw["lang"],
        catalog=raw["catalog"], text=raw["text"], like=tuple(raw["like"]),
        dislike=tuple(raw["dislike"]), spans=resolve_spans(raw["text"], raw["spans"]))


def load_concept_rows(path: str | Path | None = None, *, split: str | None = None,
                      catalog: str | None = None, lang: str | None = None) -> list[ConceptRow]:
    """Rows of the dataset (the shipped one by default), optionally of one split/catalog/lang."""
    if split is not None and split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, not {split!r}")
    if path is None:
        text = resources.files("interest_server.offline").joinpath(DATASET_RESOURCE).read_text(
            encoding="utf-8")
    else:
        text = Path(path).read_text(encoding="utf-8")
    rows = [parse_row(json.loads(line)) for line in text.splitlines() if line.strip()]
    return [r for r in rows if (split is None or r.split == split)
            and (catalog is None or r.catalog == catalog) and (lang is None or r.lang == lang)]


def build_dataset(raw_files: Iterable[Path], out: Path) -> dict[str, int]:
    """Merge raw files into one dataset file with each row's split; counts per split.

    Raises on a duplicate id or a span that is not in its text, so a bad row never lands.
    """
    seen: set[str] = set()
    lines = []
    counts = dict.fromkeys(SPLITS, 0)
    for path in sorted(raw_files):
        for line in Path(path).read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            raw = json.loads(line)
            if raw["id"] in seen:
                raise ValueError(f"duplicate id {raw['id']} in {path}")
            seen.add(raw["id"])
            raw = {"id": raw["id"], "split": split_of(raw["id"]),
                   **{k: v for k, v in raw.items() if k not in ("id", "split")}}
            parse_row(raw)  # validates spans
            counts[raw["split"]] += 1
            lines.append(json.dumps(raw, ensure_ascii=False))
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return counts


if __name__ == "__main__":  # pragma: no cover - run once when raw rows are added
    here = Path(__file__).resolve().parent / "concept_data"
    print(build_dataset(here.glob("raw/*.jsonl"), here / "descriptions.jsonl"))
