"""Redis key builders: every key of one user shares a {hash tag} so scripts stay cluster-safe."""

from __future__ import annotations

from dataclasses import dataclass

CATALOG_IDS = "catalog:ids"
"""Set of every item id in the catalog."""
CATALOG_CHANGES = "catalog:changes"
"""Stream of catalog changes that every server process follows."""
POPULARITY = "pop"
"""Sorted set item id -> forward-decayed interaction count."""


def _tag(user_id: str) -> str:
    # A brace inside the id would end the hash tag early (or make it empty, which hashes the
    # whole key), scattering one user's keys over slots; escape braces injectively.
    # An empty tag ("{}") is ignored by Redis, which then hashes the whole key: map "" to a tag
    # no escaped id can produce (every "%" of an id becomes "%25").
    return user_id.replace("%", "%25").replace("{", "%7B").replace("}", "%7D") or "%00"


@dataclass(frozen=True)
class UserKeys:
    """The Redis keys holding one user's state."""

    state: str
    """Hash: v (version), vec (packed float32 interest accumulator), t (reference time, ms),
    n (events applied), m (model id of the vector), u (last update, ms)."""
    window: str
    """List of recent events (compact JSON), newest first, capped at the window size."""
    seen: str
    """Set of item ids the user consumed."""
    event_ids: str
    """Hash event_id -> payload fingerprint, for duplicate and conflicting-replay detection."""
    event_times: str
    """Sorted set event_id -> time received (ms), to forget ids past the dedupe horizon."""
    concepts: str
    """String: JSON of the user's stated concepts with their vectors."""

    def all(self) -> list[str]:
        """Every key of the user, in a fixed order (the order scripts receive them in)."""
        return [self.state, self.window, self.seen, self.event_ids, self.event_times,
                self.concepts]


def user_keys(user_id: str) -> UserKeys:
    """Keys of one user, e.g. u:{42}:state."""
    prefix = "u:{" + _tag(user_id) + "}:"
    return UserKeys(
        state=prefix + "state",
        window=prefix + "win",
        seen=prefix + "seen",
        event_ids=prefix + "ids",
        event_times=prefix + "idt",
        concepts=prefix + "concepts",
    )


def user_key_pattern(user_id: str) -> str:
    """A SCAN pattern matching every key of one user (for audits and tests)."""
    tag = _tag(user_id)
    escaped = "".join("\\" + c if c in "*?[]\\" else c for c in tag)
    return "u:\\{" + escaped + "\\}:*"


def item_key(item_id: str) -> str:
    """Hash holding one catalog item: text, attrs (JSON), vec (packed float32), m (model id)."""
    return "item:" + item_id


def user_channel(user_id: str) -> str:
    """Pub/sub channel announcing that a user's state changed, e.g. u:{42}:changed. It carries
    the user's hash tag, so a sharded channel (SPUBLISH, Redis 7+) would live on the user's
    shard; the ACL pattern `&u:*` covers it."""
    return "u:{" + _tag(user_id) + "}:changed"
