"""Domain event types and the validated event record the store applies."""

from __future__ import annotations

import enum
import hashlib
import json
import math
from dataclasses import dataclass
from json.encoder import encode_basestring_ascii as _json_str  # what json.dumps uses for str


class EventType(enum.IntEnum):
    """Behaviour event types; the numbers match interest.v1.EventType."""

    VIEW = 1
    CLICK = 2
    LIKE = 3
    DISLIKE = 4
    PURCHASE = 5
    RATING = 6
    SKIP = 7


class Outcome(enum.IntEnum):
    """What happened to one event; the numbers match interest.v1.AckStatus."""

    APPLIED = 1
    DUPLICATE = 2
    REJECTED = 3


class RejectReason(enum.IntEnum):
    """Why an event was rejected; the numbers match interest.v1.RejectReason."""

    INVALID_FIELD = 1
    UNKNOWN_ITEM = 2
    CONFLICTING_REPLAY = 3


@dataclass(frozen=True)
class EventRecord:
    """A validated event. `timestamp_ms` is as the client sent it (0 = receive time)."""

    event_id: str
    user_id: str
    item_id: str
    type: EventType
    value: float | None
    timestamp_ms: int

    def fingerprint(self) -> str:
        """A digest of the payload, to tell a true duplicate from a conflicting replay.

        Stored fingerprints must never change, so this is the compact JSON of [user, item,
        type, value, timestamp] exactly as json.dumps writes it; validated events (str ids,
        int timestamp, finite float or no value) take a formatting shortcut that produces the
        same text at a fraction of the cost, anything else goes through json.dumps."""
        value, ts = self.value, self.timestamp_ms
        if (type(self.user_id) is str and type(self.item_id) is str and type(ts) is int
                and (value is None or (type(value) is float and math.isfinite(value)))):
            payload = (f"[{_json_str(self.user_id)},{_json_str(self.item_id)},"
                       f"{int(self.type)},{'null' if value is None else float.__repr__(value)},"
                       f"{ts}]")
        else:
            payload = json.dumps([self.user_id, self.item_id, int(self.type), value, ts],
                                 separators=(",", ":"))
        return hashlib.blake2b(payload.encode(), digest_size=12).hexdigest()

    def window_entry(self, effective_ts_ms: int) -> str:
        """The compact JSON kept in the user's recent-event window."""
        return json.dumps({"e": self.event_id, "i": self.item_id, "t": int(self.type),
                           "v": self.value, "ts": effective_ts_ms}, separators=(",", ":"))


@dataclass(frozen=True)
class EventResult:
    """The store's answer for one event."""

    outcome: Outcome
    user_version: int
    reason: RejectReason | None = None
    message: str = ""
