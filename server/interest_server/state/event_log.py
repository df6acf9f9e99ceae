"""Read a tenant's event log: every user's capped stream of acknowledged events, for training.

The server appends each acknowledged event to its user's stream `u:{<user>}:log` inside the
script that stores the event (write_record.lua), so the log holds every acked event and never a
duplicate or a rejected one; each stream is capped at about `event_log_maxlen` entries. The
streams live in their users' hash slots, so a cluster spreads them over every shard; a reader
finds them with SCAN on every primary. Spec: docs/storage-format.md (Event log)
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import redis
from tqdm import tqdm

from interest_server.events import EventType
from interest_server.state.keys import KeySpace

SCAN_COUNT = 1000
"""Keys asked of each SCAN step."""
PIPELINE_KEYS = 200
"""Logs read per round trip."""
PAGE = 2000
"""Entries per XRANGE; a longer log (maxlen above it) is read in further pages."""
EVENT_ROW_HEADER = ("user_id", "item_id", "type", "value", "timestamp_ms", "event_id")
"""The columns of events_to_rows: a generic CSV/TSV header that bulk import
(offline/import_formats.py) and the trainer's --events read the same way."""


@dataclass(frozen=True)
class LoggedEvent:
    """One acknowledged event as the log keeps it."""

    user_id: str
    item_id: str
    type: EventType
    value: float | None
    timestamp_ms: int
    """The event's effective time: its own timestamp, else when the server received it."""
    event_id: str


def _decode(user_id: str, fields: dict[bytes, bytes]) -> LoggedEvent:
    value = fields.get(b"v") or b""
    return LoggedEvent(user_id, fields[b"i"].decode(), EventType(int(fields[b"t"])),
                       float(value) if value else None, int(fields[b"ts"]),
                       fields[b"e"].decode())


def _after(entry_id: bytes) -> str:
    """The smallest stream id after `entry_id` (an exclusive start without Redis 6.2's '(')."""
    ms, seq = entry_id.decode().split("-")
    return f"{ms}-{int(seq) + 1}"


def _nodes(client: redis.Redis, cluster: bool) -> list[redis.Redis]:
    """A plain client per primary (each holds its own slots' keys), or the client itself."""
    if not cluster:
        return [client]
    return [client.get_redis_connection(node) for node in client.get_primaries()]


def _log_keys(node: redis.Redis, keys: KeySpace) -> Iterator[bytes]:
    """Each log key of the tenant on one node, once (SCAN may return a key twice)."""
    seen: set[bytes] = set()
    for key in node.scan_iter(match=keys.log_pattern, count=SCAN_COUNT, _type="stream"):
        if key not in seen:
            seen.add(key)
            yield key


def _read_node(node: redis.Redis, keys: KeySpace, bar: tqdm) -> Iterator[LoggedEvent]:
    pending: list[bytes] = []

    def flush() -> Iterator[LoggedEvent]:
        pipe = node.pipeline(transaction=False)
        for key in pending:
            pipe.xrange(key, "-", "+", count=PAGE)
        for key, entries in zip(pending, pipe.execute(), strict=True):
            user_id = keys.user_of(key)
            while entries:
                for _entry_id, fields in entries:
                    yield _decode(user_id, fields)
                bar.update(len(entries))
                # A full page may have more behind it (a log capped above PAGE).
                entries = (node.xrange(key, _after(entries[-1][0]), "+", count=PAGE)
                           if len(entries) == PAGE else [])
        pending.clear()

    for key in _log_keys(node, keys):
        pending.append(key)
        if len(pending) >= PIPELINE_KEYS:
            yield from flush()
    if pending:
        yield from flush()


def read_event_log(client: redis.Redis, keys: KeySpace, *, cluster: bool,
                   progress: bool = True) -> Iterator[LoggedEvent]:
    """Every event in the tenant's log: user by user, each user's events in the order they
    were acknowledged (not sorted by timestamp_ms; the users come in no particular order).

    `cluster`: the client is a RedisCluster; every primary is scanned. Reads a snapshot per
    user, not one of the whole tenant: events acked while reading may or may not appear.
    `progress` shows a tqdm bar of events read (on a terminal only)."""
    with tqdm(desc=f"event log {keys.tenant}", unit="ev", disable=None if progress else True,
              smoothing=0.1) as bar:
        for node in _nodes(client, cluster):
            yield from _read_node(node, keys, bar)


def events_to_rows(events: Iterable[LoggedEvent]) -> Iterator[list[str]]:
    """The events as rows under EVENT_ROW_HEADER (type by name, e.g. "like"; value '' when
    none): write them with csv.writer after the header and bulk import or the trainer reads
    them back as the same events."""
    for ev in events:
        value = "" if ev.value is None or not math.isfinite(ev.value) else repr(ev.value)
        yield [ev.user_id, ev.item_id, ev.type.name.lower(), value, str(ev.timestamp_ms),
               ev.event_id]


__all__ = ["EVENT_ROW_HEADER", "LoggedEvent", "events_to_rows", "read_event_log"]
