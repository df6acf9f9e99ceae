"""Request validation: limits from Settings, messages that name the field and the limit."""

from __future__ import annotations

import math
from collections.abc import Sequence

from interest_server.config import Settings
from interest_server.errors import InvalidArgument
from interest_server.events import EventRecord, EventType

MAX_TIMESTAMP_MS = 253_402_300_799_999  # 9999-12-31, beyond which no clock reads
MAX_RATING = 1e6


def check_id(field: str, value: str, max_length: int) -> str:
    """A non-empty id of printable characters within the length limit."""
    if not value:
        raise InvalidArgument(f"{field} is required")
    if len(value) > max_length:
        raise InvalidArgument(f"{field} is {len(value)} characters; the limit is {max_length}")
    if not value.isprintable():
        raise InvalidArgument(f"{field} contains control or non-printable characters")
    return value


def check_text(field: str, value: str, max_length: int, *, required: bool = True) -> str:
    """Free text within the length limit."""
    if required and not value.strip():
        raise InvalidArgument(f"{field} is required")
    if len(value) > max_length:
        raise InvalidArgument(f"{field} is {len(value)} characters; the limit is {max_length}")
    return value


def check_count(field: str, count: int, limit: int, *, allow_empty: bool = False) -> None:
    """A repeated field's size."""
    if count == 0 and not allow_empty:
        raise InvalidArgument(f"{field} is empty")
    if count > limit:
        raise InvalidArgument(f"{field} has {count} entries; the limit is {limit}")


def check_k(k: int, settings: Settings) -> int:
    """The number of recommendations, defaulted."""
    if k < 0:
        raise InvalidArgument(f"k must be >= 0 (got {k})")
    if k > settings.max_k:
        raise InvalidArgument(f"k is {k}; the limit is {settings.max_k}")
    return k or settings.default_k


def check_unit_float(field: str, value: float, low: float, high: float) -> float:
    """A finite float in [low, high]."""
    if not math.isfinite(value) or not low <= value <= high:
        raise InvalidArgument(f"{field} must be a finite number in [{low}, {high}] (got {value})")
    return float(value)


def check_attributes(field: str, attributes: Sequence[tuple[str, Sequence[str]]],
                     settings: Settings) -> dict[str, tuple[str, ...]]:
    """Attribute name -> values, within limits; repeated names merge."""
    check_count(field, len(attributes), settings.max_attributes_per_item, allow_empty=True)
    out: dict[str, tuple[str, ...]] = {}
    for name, values in attributes:
        check_id(f"{field}.name", name, settings.max_id_length)
        check_count(f"{field}[{name}].values", len(values), settings.max_attributes_per_item,
                    allow_empty=True)
        for value in values:
            check_id(f"{field}[{name}].value", value, settings.max_id_length)
        out[name] = tuple(dict.fromkeys(out.get(name, ()) + tuple(values)))
        # Checked after merging too: repeating a name must not get past the limit.
        check_count(f"{field}[{name}].values", len(out[name]), settings.max_attributes_per_item,
                    allow_empty=True)
    return out


def check_synonym_entries(entries: Sequence[tuple[str, str, Sequence[str]]],
                          settings: Settings) -> list[tuple[tuple[str, str], list[str]]]:
    """SetAttributeSynonyms entries: ((attribute, value), synonyms), duplicates in a list
    dropped. Each string is an id-like value; a synonym must hold a letter or digit, or it
    could never match a word. The total against max_synonyms_per_tenant is the store's check
    (RESOURCE_EXHAUSTED): it counts what the tenant already holds."""
    check_count("entries", len(entries), max(settings.max_synonyms_per_tenant, 1))
    out = []
    for n, (attribute, value, synonyms) in enumerate(entries):
        where = f"entries[{n}]"
        check_id(f"{where}.attribute", attribute, settings.max_id_length)
        check_id(f"{where}.value", value, settings.max_id_length)
        for synonym in synonyms:
            check_id(f"{where}.synonyms", synonym, settings.max_id_length)
            if not any(c.isalnum() for c in synonym):
                raise InvalidArgument(f"{where}.synonyms: {synonym!r} has no letter or digit")
        out.append(((attribute, value), list(dict.fromkeys(synonyms))))
    return out


def validate_event(event_id: str, user_id: str, item_id: str, type_number: int,
                   value: float | None, timestamp_ms: int, settings: Settings) -> EventRecord:
    """One event's fields; raises InvalidArgument naming the first bad field."""
    check_id("event_id", event_id, settings.max_id_length)
    check_id("user_id", user_id, settings.max_id_length)
    check_id("item_id", item_id, settings.max_id_length)
    try:
        event_type = EventType(type_number)
    except ValueError:
        raise InvalidArgument(
            f"type {type_number} is not a known event type (use one of "
            f"{', '.join('EVENT_TYPE_' + t.name for t in EventType)})") from None
    if value is not None and (not math.isfinite(value) or abs(value) > MAX_RATING):
        raise InvalidArgument(f"value must be a finite number with |value| <= {MAX_RATING:g}")
    if event_type == EventType.RATING and value is None:
        raise InvalidArgument("value is required for EVENT_TYPE_RATING")
    if not 0 <= timestamp_ms <= MAX_TIMESTAMP_MS:
        raise InvalidArgument(
            f"timestamp_ms must be epoch milliseconds in [0, {MAX_TIMESTAMP_MS}] (0 = now)")
    return EventRecord(event_id, user_id, item_id, event_type, value, timestamp_ms)
