"""Validate hand-written concept dataset rows (JSONL) and print coverage counts.

Usage: .venv/bin/python server/interest_server/offline/concept_data/check_raw.py FILE...

Checks each row against the shared row format (keys, lang, catalog, genre names, spans that
are exact substrings with a valid polarity and strength, unique ids across all files) and
exits 1 when any row is invalid. Self-contained on purpose: it must run before (and without)
the rest of the concept pipeline.
"""

from __future__ import annotations

import json
import re
import sys
from collections import Counter
from pathlib import Path

MOVIE_GENRES: tuple[str, ...] = (
    "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary",
    "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi",
    "Thriller", "War", "Western",
)  # fmt: skip
MUSIC_GENRES: tuple[str, ...] = (
    "Rock", "Pop", "Jazz", "Classical", "Hip-Hop", "Electronic", "Country", "Blues", "Metal",
    "Folk", "Reggae", "R&B", "Punk", "Soul", "Latin",
)  # fmt: skip
GENRES: dict[str, tuple[str, ...]] = {"movies": MOVIE_GENRES, "music": MUSIC_GENRES}
LANGS = frozenset({"en", "fr", "zh", "es", "de"})
KEYS = frozenset({"id", "lang", "catalog", "text", "like", "dislike", "spans"})
POLARITIES = frozenset({"like", "dislike"})
STRENGTHS = frozenset({1.0, 0.8, 0.6, 0.5})
ID_RE = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*-\d{3,}$")
PROBES = Path("/work/shared/eval/concept_probes.json")
SHORT_WORDS = 6
LONG_WORDS = 30


def _norm(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s]", " ", text.lower()).split())


def _probe_texts() -> set[str]:
    # The public probes are added by the lead; a raw row must never duplicate one.
    if not PROBES.exists():
        return set()
    try:
        return {_norm(p["text"]) for p in json.loads(PROBES.read_text("utf-8"))["probes"]}
    except (OSError, ValueError, KeyError, TypeError):
        return set()


def _word_count(row: dict) -> int:
    text = row["text"]
    if row["lang"] == "zh":
        # No spaces in Chinese: count characters, roughly 1.5 chars a word.
        return int(len(re.sub(r"\s", "", text)) / 1.5)
    return len(text.split())


def check_row(row: object, genres_ok: bool = True) -> list[str]:
    """Return the problems of one parsed row (empty when valid)."""
    if not isinstance(row, dict):
        return ["row is not a JSON object"]
    errors: list[str] = []
    keys = set(row)
    if keys != KEYS:
        missing, extra = sorted(KEYS - keys), sorted(keys - KEYS)
        errors.append(f"keys: missing {missing} extra {extra}")
        return errors
    if not isinstance(row["id"], str) or not ID_RE.match(row["id"]):
        errors.append(f"bad id {row['id']!r} (want <prefix>-<nnn>)")
    if row["lang"] not in LANGS:
        errors.append(f"bad lang {row['lang']!r}")
    if row["catalog"] not in GENRES:
        errors.append(f"bad catalog {row['catalog']!r}")
        return errors
    text = row["text"]
    if not isinstance(text, str) or not text.strip():
        errors.append("text must be a non-empty string")
        return errors
    valid = GENRES[row["catalog"]]
    for side in ("like", "dislike"):
        values = row[side]
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            errors.append(f"{side} must be a list of strings")
            continue
        bad = [v for v in values if v not in valid]
        if bad:
            errors.append(f"{side}: not {row['catalog']} genres {bad}")
        if len(set(values)) != len(values):
            errors.append(f"{side}: duplicate genres")
    if isinstance(row["like"], list) and isinstance(row["dislike"], list):
        both = set(row["like"]) & set(row["dislike"])
        if both:
            errors.append(f"genres both liked and disliked {sorted(both)}")
    spans = row["spans"]
    if not isinstance(spans, list) or not spans:
        errors.append("spans must be a non-empty list")
        return errors
    polarities: set[str] = set()
    for span in spans:
        if not (isinstance(span, list) and len(span) == 3):
            errors.append(f"span {span!r} is not [text, polarity, strength]")
            continue
        s, pol, strength = span
        if not isinstance(s, str) or not s.strip() or s not in text:
            errors.append(f"span {s!r} is not a substring of the text")
        elif s != s.strip():
            errors.append(f"span {s!r} has leading/trailing whitespace")
        if pol not in POLARITIES:
            errors.append(f"span {s!r}: bad polarity {pol!r}")
        else:
            polarities.add(pol)
        if isinstance(strength, bool) or strength not in STRENGTHS:
            errors.append(f"span {s!r}: strength {strength!r} not in {sorted(STRENGTHS)}")
    # A labelled genre must come from some stated preference of the same polarity.
    for side in ("like", "dislike"):
        if row[side] and side not in polarities:
            errors.append(f"{side} genres given but no {side} span")
    return errors


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    probes = _probe_texts()
    seen_ids: dict[str, str] = {}
    seen_texts: dict[str, str] = {}
    n_errors = n_warnings = 0
    rows: list[dict] = []
    for name in argv:
        for lineno, line in enumerate(Path(name).read_text("utf-8").splitlines(), 1):
            where = f"{name}:{lineno}"
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError as exc:
                print(f"ERROR {where}: invalid JSON ({exc})")
                n_errors += 1
                continue
            problems = check_row(row)
            valid = not problems
            rid = row.get("id") if isinstance(row, dict) else None
            text = row.get("text") if isinstance(row, dict) else None
            if isinstance(rid, str):
                if rid in seen_ids:
                    problems.append(f"duplicate id {rid} (first at {seen_ids[rid]})")
                seen_ids.setdefault(rid, where)
                if not rid.startswith(f"{row.get('lang')}-"):
                    print(f"WARN  {where}: id {rid} does not start with lang {row.get('lang')!r}")
                    n_warnings += 1
            if valid and row["lang"] != "zh":
                # The first occurrence is the one meant; inside a longer word it is a mislabel.
                for span in row["spans"]:
                    at = text.find(span[0])
                    end = at + len(span[0])
                    if (at > 0 and text[at - 1].isalnum()) or (
                        end < len(text) and text[end].isalnum()
                    ):
                        print(f"WARN  {where}: span {span[0]!r} first occurs inside a word")
                        n_warnings += 1
            if isinstance(text, str):
                norm = _norm(text)
                if norm in probes:
                    problems.append("text copies a public probe")
                if norm in seen_texts:
                    print(f"WARN  {where}: same text as {seen_texts[norm]}")
                    n_warnings += 1
                seen_texts.setdefault(norm, where)
            for p in problems:
                print(f"ERROR {where} [{row.get('id') if isinstance(row, dict) else '?'}]: {p}")
            n_errors += len(problems)
            if valid:
                rows.append(row)
    _report(rows)
    print(f"\n{len(rows)} valid rows, {n_errors} errors, {n_warnings} warnings")
    return 1 if n_errors else 0


def _report(rows: list[dict]) -> None:
    by_cat_lang = Counter((r["catalog"], r["lang"]) for r in rows)
    print("rows per catalog/lang:")
    for (cat, lang), n in sorted(by_cat_lang.items()):
        print(f"  {cat:7s} {lang}: {n}")
    for cat, genres in GENRES.items():
        cat_rows = [r for r in rows if r["catalog"] == cat]
        if not cat_rows:
            continue
        likes = Counter(g for r in cat_rows for g in r["like"])
        dislikes = Counter(g for r in cat_rows for g in r["dislike"])
        print(f"\n{cat}: genre  as-like  as-dislike")
        for g in genres:
            flag = "  <- missing" if not likes[g] or not dislikes[g] else ""
            print(f"  {g:12s} {likes[g]:5d} {dislikes[g]:8d}{flag}")
        shape = Counter(
            "like-only" if r["like"] and not r["dislike"]
            else "dislike-only" if r["dislike"] and not r["like"]
            else "mixed" if r["like"] else "no-genre"
            for r in cat_rows
        )  # fmt: skip
        print("  shape: " + ", ".join(f"{k} {v}" for k, v in sorted(shape.items())))
        words = [_word_count(r) for r in cat_rows]
        short = sum(w <= SHORT_WORDS for w in words)
        long_ = sum(w >= LONG_WORDS for w in words)
        print(f"  length: short(<={SHORT_WORDS}w) {short}, long(>={LONG_WORDS}w) {long_}")
        strengths = Counter(s[2] for r in cat_rows for s in r["spans"])
        print("  span strengths: " + ", ".join(f"{k} {v}" for k, v in sorted(strengths.items())))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
