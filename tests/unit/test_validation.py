"""Table-driven tests of request validation: limits, defaults and messages naming the field."""

from __future__ import annotations

import math

import pytest
from interest_server.api.validation import (
    MAX_TIMESTAMP_MS,
    check_attributes,
    check_count,
    check_id,
    check_k,
    check_text,
    check_unit_float,
    validate_event,
)
from interest_server.config import Settings
from interest_server.errors import InvalidArgument
from interest_server.events import EventRecord, EventType

SETTINGS = Settings(max_id_length=8, max_k=50, default_k=7, max_attributes_per_item=3)


@pytest.mark.parametrize(("value", "error"), [
    ("", "user_id is required"),
    ("123456789", "user_id is 9 characters; the limit is 8"),
    ("a\nb", "user_id contains control or non-printable characters"),
    ("a\x00", "user_id contains control or non-printable characters"),
    ("\tab", "user_id contains control or non-printable characters"),
    ("a\x7f", "user_id contains control or non-printable characters"),
    ("a\u200bb", "user_id contains control or non-printable characters"),  # zero-width space
    ("a\u2028", "user_id contains control or non-printable characters"),  # line separator
])
def test_check_id_rejects(value: str, error: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        check_id("user_id", value, 8)
    assert str(info.value) == error


@pytest.mark.parametrize("value", ["a", "12345678", "a b", "{x}", "漢字🙂", "%7B", "ü" * 8])
def test_check_id_accepts(value: str) -> None:
    assert check_id("user_id", value, 8) == value


@pytest.mark.parametrize(("k", "expected"), [(0, 7), (1, 1), (10, 10), (50, 50)])
def test_check_k_accepts_and_defaults(k: int, expected: int) -> None:
    assert check_k(k, SETTINGS) == expected


@pytest.mark.parametrize(("k", "error"), [
    (-1, "k must be >= 0 (got -1)"),
    (-(2**31), f"k must be >= 0 (got {-(2**31)})"),
    (51, "k is 51; the limit is 50"),
    (2**31 - 1, f"k is {2**31 - 1}; the limit is 50"),
])
def test_check_k_rejects(k: int, error: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        check_k(k, SETTINGS)
    assert str(info.value) == error


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, -0.0001, 1.0001, -5.0, 1e300])
def test_check_unit_float_rejects(value: float) -> None:
    with pytest.raises(InvalidArgument) as info:
        check_unit_float("theta", value, 0.0, 1.0)
    assert str(info.value).startswith("theta must be a finite number in [0.0, 1.0]")


@pytest.mark.parametrize("value", [0.0, 1.0, 0.5, -0.0, 1e-300])
def test_check_unit_float_accepts_closed_interval(value: float) -> None:
    out = check_unit_float("theta", value, 0.0, 1.0)
    assert out == value and isinstance(out, float)


def test_check_unit_float_returns_plain_float_from_int() -> None:
    out = check_unit_float("concept_weight", 2, -5.0, 5.0)
    assert out == 2.0 and type(out) is float


def test_check_text_and_count() -> None:
    assert check_text("text", "  hi ", 5) == "  hi "
    assert check_text("text", "   ", 5, required=False) == "   "
    with pytest.raises(InvalidArgument, match="^text is required$"):
        check_text("text", " \n ", 5)
    with pytest.raises(InvalidArgument, match="^text is 6 characters; the limit is 5$"):
        check_text("text", "abcdef", 5)
    check_count("items", 3, 3)
    check_count("items", 0, 3, allow_empty=True)
    with pytest.raises(InvalidArgument, match="^items is empty$"):
        check_count("items", 0, 3)
    with pytest.raises(InvalidArgument, match=r"^items has 4 entries; the limit is 3$"):
        check_count("items", 4, 3)


GOOD = dict(event_id="e1", user_id="u1", item_id="i1", type_number=int(EventType.LIKE),
            value=None, timestamp_ms=1_700_000_000_000)


def test_validate_event_ok() -> None:
    record = validate_event(**GOOD, settings=SETTINGS)
    assert record == EventRecord("e1", "u1", "i1", EventType.LIKE, None, 1_700_000_000_000)
    assert type(record.type) is EventType
    rating = validate_event(**{**GOOD, "type_number": 6, "value": 4.5, "timestamp_ms": 0},
                            settings=SETTINGS)
    assert rating.type == EventType.RATING and rating.value == 4.5 and rating.timestamp_ms == 0
    edge = validate_event(**{**GOOD, "value": -1e6, "timestamp_ms": MAX_TIMESTAMP_MS},
                          settings=SETTINGS)
    assert edge.value == -1e6 and edge.timestamp_ms == MAX_TIMESTAMP_MS


@pytest.mark.parametrize(("change", "field", "fragment"), [
    ({"event_id": ""}, "event_id", "required"),
    ({"event_id": "x" * 9}, "event_id", "limit is 8"),
    ({"event_id": "a\nb"}, "event_id", "control"),
    ({"user_id": ""}, "user_id", "required"),
    ({"user_id": "x" * 9}, "user_id", "limit is 8"),
    ({"item_id": ""}, "item_id", "required"),
    ({"item_id": "\x01"}, "item_id", "control"),
    ({"type_number": 0}, "type", "not a known event type"),
    ({"type_number": 8}, "type", "EVENT_TYPE_RATING"),
    ({"type_number": -1}, "type", "not a known event type"),
    ({"value": math.nan}, "value", "finite"),
    ({"value": math.inf}, "value", "finite"),
    ({"value": 1e6 + 1}, "value", "|value| <= 1e+06"),
    ({"type_number": 6, "value": None}, "value", "required for EVENT_TYPE_RATING"),
    ({"timestamp_ms": -1}, "timestamp_ms", "epoch milliseconds"),
    ({"timestamp_ms": MAX_TIMESTAMP_MS + 1}, "timestamp_ms", str(MAX_TIMESTAMP_MS)),
])
def test_validate_event_rejects_naming_the_field(change: dict, field: str, fragment: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        validate_event(**{**GOOD, **change}, settings=SETTINGS)
    message = str(info.value)
    assert message.split(" ", 1)[0] == field, message
    assert fragment in message


def test_validate_event_reports_the_first_bad_field() -> None:
    with pytest.raises(InvalidArgument, match="^event_id "):
        validate_event(**{**GOOD, "event_id": "", "user_id": "", "type_number": 0},
                       settings=SETTINGS)
    with pytest.raises(InvalidArgument, match="^item_id "):
        validate_event(**{**GOOD, "item_id": "", "timestamp_ms": -5}, settings=SETTINGS)


def test_check_attributes_merges_repeated_names_in_order_without_duplicates() -> None:
    out = check_attributes("attributes", [("genre", ["Comedy", "Drama"]), ("year", ["1999"]),
                                          ("genre", ["Drama", "Horror"])], SETTINGS)
    assert out == {"genre": ("Comedy", "Drama", "Horror"), "year": ("1999",)}
    assert check_attributes("attributes", [], SETTINGS) == {}
    assert check_attributes("attributes", [("tags", [])], SETTINGS) == {"tags": ()}
    assert check_attributes("attributes", [("g", ["a", "a", "b"])], SETTINGS) == {"g": ("a", "b")}


@pytest.mark.parametrize(("attributes", "error"), [
    ([("a", ["x"])] * 4, "attributes has 4 entries; the limit is 3"),
    ([("genre", ["a", "b", "c", "d"])], "attributes[genre].values has 4 entries; the limit is 3"),
    ([("", ["x"])], "attributes.name is required"),
    ([("g\n", ["x"])], "attributes.name contains control or non-printable characters"),
    ([("n" * 9, ["x"])], "attributes.name is 9 characters; the limit is 8"),
    ([("genre", [""])], "attributes[genre].value is required"),
    ([("genre", ["ok", "v" * 9])], "attributes[genre].value is 9 characters; the limit is 8"),
])
def test_check_attributes_limits(attributes: list, error: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        check_attributes("attributes", attributes, SETTINGS)
    assert str(info.value) == error


def test_check_attributes_limit_applies_after_merging() -> None:
    # Was a bug: the limit was checked per repeated entry, so repeating a name got past it.
    attributes = [("genre", ["a", "b", "c"]), ("genre", ["d", "e", "f"])]
    try:
        out = check_attributes("attributes", attributes, SETTINGS)
    except InvalidArgument:
        return
    assert len(out["genre"]) <= SETTINGS.max_attributes_per_item
