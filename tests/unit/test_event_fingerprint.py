"""The event fingerprint is stored (32 bits of it, per event) and compared on every replay, so
its shortcut must produce exactly the digest of the json.dumps payload it replaced."""

from __future__ import annotations

import hashlib
import json

from hypothesis import given
from hypothesis import strategies as st
from interest_server.events import EventRecord, EventType


def reference(ev: EventRecord) -> str:
    """The fingerprint as first defined (json.dumps of the payload)."""
    payload = json.dumps([ev.user_id, ev.item_id, int(ev.type), ev.value, ev.timestamp_ms],
                         separators=(",", ":"))
    return hashlib.blake2b(payload.encode(), digest_size=12).hexdigest()


@given(user=st.text(max_size=40), item=st.text(max_size=40),
       kind=st.sampled_from(list(EventType)),
       value=st.none() | st.floats(allow_nan=False, allow_infinity=False),
       ts=st.integers(min_value=-(2**63), max_value=2**63 - 1))
def test_fingerprint_equals_the_json_dumps_digest(user: str, item: str, kind: EventType,
                                                  value: float | None, ts: int) -> None:
    ev = EventRecord("e", user, item, kind, value, ts)
    assert ev.fingerprint() == reference(ev)


def test_unusual_values_take_the_json_path_and_still_agree() -> None:
    for value, ts in [(float("nan"), 0), (float("inf"), 1), (3, 2), (True, 5), (-0.0, 0),
                      (1e300, 7), (None, True)]:
        ev = EventRecord("e", "ü\"ser\n", "\u2028item", EventType.RATING, value, ts)  # type: ignore[arg-type]
        assert ev.fingerprint() == reference(ev)


def test_a_known_fingerprint_never_changes() -> None:
    # Computed with the original json.dumps definition; records in Redis hold its bits.
    ev = EventRecord("e1", "user-1", "item-9", EventType.RATING, 4.5, 1_700_000_000_000)
    assert ev.fingerprint() == hashlib.blake2b(
        b'["user-1","item-9",6,4.5,1700000000000]', digest_size=12).hexdigest()
