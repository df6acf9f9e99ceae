"""Event log layouts: RecBole .inter, GroupLens u.data or a CSV/TSV with a header, row to Event."""

from __future__ import annotations

import csv
import datetime as dt
import math
from dataclasses import dataclass
from pathlib import Path

from interest.v1 import interest_pb2 as pb

# Header names (lower case, RecBole's ":type" suffix dropped) that fill each event field.
COLUMN_ALIASES: dict[str, tuple[str, ...]] = {
    "user_id": ("user_id", "userid", "user", "uid", "visitorid"),
    "item_id": ("item_id", "itemid", "item", "movie_id", "movieid", "iid"),
    "type": ("type", "event_type", "event"),
    "value": ("value", "rating", "score"),
    "timestamp": ("timestamp", "ts", "time"),
    "timestamp_ms": ("timestamp_ms", "ts_ms", "time_ms"),
    "event_id": ("event_id",),
}
MS_THRESHOLD = 1e11
"""A `timestamp` at or above this is already in milliseconds (as seconds it would be year 5138;
as milliseconds every date since March 1973 is above it)."""


class ImportFileError(ValueError):
    """The file cannot be imported as it is (no usable header, a checkpoint of another file)."""


@dataclass(frozen=True)
class Layout:
    """How the rows of one file map to events: column indexes (None: absent) and units."""

    format: str
    delimiter: str
    header: bool
    user_id: int
    item_id: int
    type: int | None = None
    value: int | None = None
    timestamp: int | None = None
    timestamp_ms: int | None = None
    event_id: int | None = None
    default_type: str = "view"

    @property
    def width(self) -> int:
        return 1 + max(i for i in (self.user_id, self.item_id, self.type, self.value,
                                   self.timestamp, self.timestamp_ms, self.event_id)
                       if i is not None)


def detect_layout(path: Path, *, delimiter: str | None = None, event_type: str | None = None,
                  id_column: str | None = None) -> Layout:
    """Recognise RecBole `.inter`, GroupLens `u.data` or a generic CSV/TSV with a header."""
    with path.open(encoding="utf-8-sig", newline="") as handle:
        first = handle.readline().rstrip("\r\n")
    if not first.strip():
        raise ImportFileError(f"{path}: empty first line; expected a header")
    sep = delimiter or next((c for c in ("\t", ",", ";", "|") if c in first), "\t")
    cells = next(csv.reader([first], delimiter=sep))
    names = [c.split(":", 1)[0].strip().lower() for c in cells]
    if len(cells) == 4 and all(_is_number(c) for c in cells):
        # GroupLens u.data: user, item, rating, seconds; no header.
        return Layout("grouplens", sep, False, 0, 1, value=2, timestamp=3,
                      default_type=event_type or "rating")
    index: dict[str, int] = {}
    for fld, aliases in COLUMN_ALIASES.items():
        found = [names.index(a) for a in aliases if a in names]
        if found:
            index[fld] = found[0]
    if id_column is not None:
        if id_column.lower() not in names:
            raise ImportFileError(f"{path}: no column {id_column!r} for event ids; found {names}")
        index["event_id"] = names.index(id_column.lower())
    missing = [f for f in ("user_id", "item_id") if f not in index]
    if missing:
        raise ImportFileError(
            f"{path}: header lacks {missing}; found {names}. Expected a header with user_id, "
            "item_id and optionally type, value (or rating), timestamp (seconds) or "
            "timestamp_ms, event_id; or GroupLens u.data (user, item, rating, seconds; no header)")
    recbole = any(":" in c for c in cells)
    default_type = event_type or ("rating" if "value" in index else "view")
    return Layout("recbole" if recbole else "generic", sep, True, index["user_id"],
                  index["item_id"], index.get("type"), index.get("value"), index.get("timestamp"),
                  index.get("timestamp_ms"), index.get("event_id"), default_type)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _type_number(raw: str, cache: dict[str, int]) -> int:
    number = cache.get(raw)
    if number is None:
        name = raw.strip().upper().replace("-", "_")
        if name.isdigit():
            number = int(name)
        else:
            if not name.startswith("EVENT_TYPE_"):
                name = "EVENT_TYPE_" + name
            try:
                number = pb.EventType.Value(name)
            except ValueError:
                raise ValueError(f"unknown event type {raw!r}") from None
        cache[raw] = number
    return number


def _millis(raw: str, already_ms: bool) -> int:
    text = raw.strip()
    if not text:
        return 0  # the server's receive time
    try:
        number = float(text)
    except ValueError:
        if already_ms:
            raise ValueError(f"bad timestamp_ms {raw!r}") from None
        try:
            when = dt.datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(f"bad timestamp {raw!r} (epoch seconds or ISO 8601)") from None
        if when.tzinfo is None:
            when = when.replace(tzinfo=dt.UTC)
        return round(when.timestamp() * 1000)
    if not math.isfinite(number) or number < 0:
        raise ValueError(f"bad timestamp {raw!r}")
    return round(number if already_ms or number >= MS_THRESHOLD else number * 1000)


def build_event(row: list[str], line: int, layout: Layout, id_prefix: str,
                types: dict[str, int]) -> pb.Event:
    """One row as an Event; the id is the row's id column or `<id_prefix>:<line>`."""
    if len(row) < layout.width:
        raise ValueError(f"{len(row)} fields, need {layout.width}")
    event_id = row[layout.event_id].strip() if layout.event_id is not None else ""
    raw_type = row[layout.type].strip() if layout.type is not None else ""
    event = pb.Event(
        event_id=event_id or f"{id_prefix}:{line}",
        user_id=row[layout.user_id].strip(),
        item_id=row[layout.item_id].strip(),
        type=_type_number(raw_type or layout.default_type, types),
    )
    if layout.value is not None and row[layout.value].strip():
        try:
            event.value = float(row[layout.value])
        except ValueError:
            raise ValueError(f"bad value {row[layout.value]!r}") from None
    if layout.timestamp_ms is not None:
        event.timestamp_ms = _millis(row[layout.timestamp_ms], True)
    elif layout.timestamp is not None:
        event.timestamp_ms = _millis(row[layout.timestamp], False)
    return event


def default_id_prefix(path: Path) -> str:
    """The file's name (at most 100 characters): ids like `ml-100k.inter:2` say where from."""
    name = "".join(c if c.isprintable() and not c.isspace() else "_" for c in path.name)
    return name[:100] or "import"
