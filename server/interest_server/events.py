"""Domain event types and the validated event record the store applies."""

from __future__ import annotations

import enum
import hashlib
import json
from dataclasses import dataclass


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
        """A digest of the payload, to tell a true duplicate from a conflicting replay."""
        payload = json.dumps([self.user_id, self.item_id, int(self.type), self.value,
                              self.timestamp_ms], separators=(",", ":"))
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
