"""One user's behaviour state as a single compact binary value (record format 2).

Format 1 spread a user over five Redis keys (state hash, window list of JSON, consumed set,
event-id hash, event-time sorted set): about 15.8 KB per user at a 50-event window, most of it
per-entry overhead. Format 2 keeps all of it in one string, so a write is one SET guarded by a
compare of the first HEADER.size bytes, and a read is one GET:

    header   magic "IR2\\0", version u64, epoch (8 random bytes per incarnation of the user)
    meta     t_ref i64, updated_ms i64, applied u64, model-id length u16, dim u16, vector dtype u8
    model id (utf-8), then the accumulator (dim float32)
    items    u32 byte length, then the consumed item ids joined by NUL (ids are printable, so
             NUL never occurs in one); events refer to an item by its position here
    events   u32 count, then EVENT_DTYPE rows, oldest first (arrival order): the window plus every
             event still inside the dedupe horizon
    ids      u32 byte length, then the event ids of the newest rows joined by NUL (only the
             window's events keep their id text; older rows keep its 64-bit hash for dedupe).
             Ids that are lower-case hex or canonical UUIDs are stored as a control-character
             tag + the base64 of their bytes (23 characters for 32 or 36): ids are printable,
             so a tag never starts a real one, and the packing is lossless
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

MAGIC = b"IR2\x00"
HEADER = struct.Struct("<4sQ8s")
"""magic, version, epoch: the bytes a writer compares before replacing the record."""
META = struct.Struct("<qqQHHB")
LENGTH = struct.Struct("<I")
VECTOR_F32 = 1
NO_ITEM = 0xFFFFFFFF
"""Item position of a row converted from format 1 whose item was not kept (dedupe only)."""
SEP = b"\x00"

EVENT_DTYPE = np.dtype([("id", "<u8"), ("fp", "<u4"), ("recv_s", "<u4"), ("ts", "<i8"),
                        ("item", "<u4"), ("type", "u1"), ("value", "<f8")])
"""One event row, 37 bytes: id hash, payload fingerprint (32 bits), receive time (epoch s),
effective timestamp (ms), item position, event type, value (NaN = none)."""


def event_id_hash(event_id: str) -> int:
    """64-bit hash of an event id (collisions need ~2^32 ids of one user)."""
    return int.from_bytes(hashlib.blake2b(event_id.encode(), digest_size=8).digest(), "little")


def fingerprint_bits(fingerprint: str) -> int:
    """The 32 bits of a payload fingerprint (hex) that a record keeps."""
    return int(fingerprint[:8], 16)


def new_epoch() -> bytes:
    """A fresh incarnation id."""
    return os.urandom(8)


def _split(blob: bytes) -> list[str]:
    return blob.decode().split("\x00") if blob else []


_HEX = re.compile(r"(?:[0-9a-f]{2}){8,64}")
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_HEX_TAG, _UUID_TAG = "\x01", "\x02"


def pack_event_id(event_id: str) -> str:
    """The stored form of an event id: lower-case hex (16-128 digits) and canonical UUIDs as a
    tag + unpadded base64 of their bytes, anything else as it is."""
    if _HEX.fullmatch(event_id):
        return _HEX_TAG + base64.b64encode(bytes.fromhex(event_id)).decode().rstrip("=")
    if _UUID.fullmatch(event_id):
        raw = bytes.fromhex(event_id.replace("-", ""))
        return _UUID_TAG + base64.b64encode(raw).decode().rstrip("=")
    return event_id


def unpack_event_id(stored: str) -> str:
    """Inverse of pack_event_id."""
    tag = stored[:1]
    if tag not in (_HEX_TAG, _UUID_TAG):
        return stored
    body = stored[1:]
    raw = base64.b64decode(body + "=" * (-len(body) % 4)).hex()
    if tag == _HEX_TAG:
        return raw
    return f"{raw[:8]}-{raw[8:12]}-{raw[12:16]}-{raw[16:20]}-{raw[20:]}"


@dataclass
class NewEvent:
    """An event about to be added to a record."""

    event_id: str
    id_hash: int
    """event_id_hash(event_id), computed once by the caller."""
    fingerprint: int
    item_id: str
    type: int
    value: float | None
    timestamp_ms: int


@dataclass
class UserRecord:
    """A decoded record. `events` is a structured array of EVENT_DTYPE, oldest first;
    `packed_ids` are the stored id texts (pack_event_id) of the newest len(packed_ids) rows."""

    version: int = 0
    epoch: bytes = b""
    t_ref: int = 0
    updated_ms: int = 0
    applied: int = 0
    model: str = ""
    vector: np.ndarray | None = None
    items: list[str] = field(default_factory=list)
    events: np.ndarray = field(default_factory=lambda: np.zeros(0, EVENT_DTYPE))
    packed_ids: list[str] = field(default_factory=list)
    _positions: dict[str, int] | None = field(default=None, repr=False, compare=False)
    _items_blob: bytes | None = field(default=None, repr=False, compare=False)
    """`items` as stored (NUL-joined), while it is known to be current."""

    # ---- encoding -----------------------------------------------------------------------

    def header(self) -> bytes:
        """The compare-and-set guard: b'' for a user with no record yet."""
        return HEADER.pack(MAGIC, self.version, self.epoch) if self.epoch else b""

    def encode(self) -> bytes:
        """The record's bytes."""
        model = self.model.encode()
        vec = b"" if self.vector is None else np.asarray(self.vector, "<f4").tobytes()
        dim = 0 if self.vector is None else len(self.vector)
        items = self._items_blob
        if items is None:
            items = SEP.join(i.encode() for i in self.items)
        ids = "\x00".join(self.packed_ids).encode()
        return b"".join([
            HEADER.pack(MAGIC, self.version, self.epoch),
            META.pack(self.t_ref, self.updated_ms, self.applied, len(model), dim,
                      VECTOR_F32 if dim else 0),
            model, vec, LENGTH.pack(len(items)), items,
            LENGTH.pack(len(self.events)), self.events.astype(EVENT_DTYPE, copy=False).tobytes(),
            LENGTH.pack(len(ids)), ids])

    @classmethod
    def decode(cls, raw: bytes) -> UserRecord:
        """Inverse of encode; raises ValueError on anything that is not a format-2 record."""
        if len(raw) < HEADER.size + META.size:
            raise ValueError("user record too short")
        magic, version, epoch = HEADER.unpack_from(raw, 0)
        if magic != MAGIC:
            raise ValueError(f"not a user record (magic {magic!r})")
        pos = HEADER.size
        t_ref, updated_ms, applied, model_len, dim, dtype = META.unpack_from(raw, pos)
        pos += META.size
        model = raw[pos:pos + model_len].decode()
        pos += model_len
        vector = None
        if dtype == VECTOR_F32:
            vector = np.frombuffer(raw, "<f4", dim, pos).astype(np.float32)
            pos += 4 * dim
        (n,) = LENGTH.unpack_from(raw, pos)
        items_blob = raw[pos + 4:pos + 4 + n]
        pos += 4 + n
        (count,) = LENGTH.unpack_from(raw, pos)
        pos += 4
        events = np.frombuffer(raw, EVENT_DTYPE, count, pos)  # read-only: writes build anew
        pos += count * EVENT_DTYPE.itemsize
        (n,) = LENGTH.unpack_from(raw, pos)
        packed_ids = _split(raw[pos + 4:pos + 4 + n])
        if pos + 4 + n != len(raw):
            raise ValueError("user record has trailing or missing bytes")
        return cls(version, epoch, t_ref, updated_ms, applied, model, vector, _split(items_blob),
                   events, packed_ids, _items_blob=items_blob)

    # ---- reads --------------------------------------------------------------------------

    @property
    def event_ids(self) -> list[str]:
        """The id texts of the newest len(event_ids) rows (the window's)."""
        return [unpack_event_id(e) for e in self.packed_ids]

    def stored_fingerprints(self) -> dict[int, int]:
        """event id hash -> fingerprint bits of every event inside the dedupe horizon."""
        return dict(zip(self.events["id"].tolist(), self.events["fp"].tolist(), strict=True))

    def recent(self, limit: int) -> list[dict]:
        """Up to `limit` newest window events, newest first, as {e, i, t, v, ts} dicts."""
        n = min(limit, len(self.packed_ids), len(self.events))
        rows = self.events[len(self.events) - n:]
        ids = [unpack_event_id(e) for e in self.packed_ids[len(self.packed_ids) - n:]]
        out = []
        for row, event_id in zip(rows.tolist(), ids, strict=True):
            _, _, _, ts, item, etype, value = row
            out.append({"e": event_id, "i": self.items[item] if item != NO_ITEM else "",
                        "t": etype, "v": None if value != value else value, "ts": ts})
        out.reverse()
        return out

    def history(self, limit: int) -> list[tuple[str, int, int]]:
        """Up to `limit` newest window events, oldest first, as (item id, type, timestamp):
        what a model reading recent events needs, without unpacking the event ids."""
        n = min(limit, len(self.packed_ids), len(self.events))
        rows = self.events[len(self.events) - n:]
        return [(self.items[item] if item != NO_ITEM else "", etype, ts)
                for _, _, _, ts, item, etype, _ in rows.tolist()]

    def consumed(self) -> set[str]:
        """Every item the user consumed."""
        return set(self.items)

    # ---- writes -------------------------------------------------------------------------

    def item_position(self, item_id: str) -> int:
        """The item's position in `items`, appending it when new."""
        if self._positions is None:
            self._positions = {item: n for n, item in enumerate(self.items)}
        pos = self._positions.get(item_id)
        if pos is None:
            pos = self._positions[item_id] = len(self.items)
            self.items.append(item_id)
            if self._items_blob is not None:
                self._items_blob += (SEP if pos else b"") + item_id.encode()
        return pos

    def add_events(self, new: Sequence[NewEvent], received_ms: int, window: int,
                   dedupe_cutoff_ms: int) -> None:
        """Append new events (arrival order), then drop rows that are outside both the window
        and the dedupe horizon, and id texts outside the window."""
        n_old, recv_s = len(self.events), received_ms // 1000
        rows = np.empty(n_old + len(new), EVENT_DTYPE)  # (np.concatenate of records is slow)
        rows[:n_old] = self.events
        rows[n_old:] = [(e.id_hash, e.fingerprint, recv_s, e.timestamp_ms,
                         self.item_position(e.item_id), e.type,
                         np.nan if e.value is None else e.value) for e in new]
        outside = len(rows) - window  # rows before this index are outside the window
        if outside > 0:
            cutoff_s = -(-dedupe_cutoff_ms // 1000)  # kept: received at or after the cutoff
            keep = np.ones(len(rows), dtype=bool)
            keep[:outside] = rows["recv_s"][:outside] >= cutoff_s
            if not keep.all():
                rows = rows[keep]
        self.events = rows
        ids = self.packed_ids + [pack_event_id(e.event_id) for e in new[max(len(new) - window, 0):]]
        self.packed_ids = ids[max(len(ids) - window, 0):]

    def copy(self) -> UserRecord:
        """A deep enough copy to modify without touching this one."""
        return UserRecord(self.version, self.epoch, self.t_ref, self.updated_ms, self.applied,
                          self.model, self.vector, list(self.items), self.events,
                          list(self.packed_ids), dict(self._positions) if self._positions
                          is not None else None, self._items_blob)


def from_format1(state: dict[bytes, bytes], window: Sequence[bytes], seen: Iterable[bytes],
                 ids: dict[bytes, bytes], times: Sequence[tuple[bytes, float]]) -> UserRecord:
    """Convert a user stored in format 1 (state hash, window list newest first, consumed set,
    event id -> fingerprint hash, event id -> receive ms sorted set)."""
    vec = state.get(b"vec")
    epoch = state.get(b"e") or b""
    record = UserRecord(
        version=int(state.get(b"v") or 0),
        epoch=bytes.fromhex(epoch.decode()) if epoch else new_epoch(),
        t_ref=int(state.get(b"t") or 0), updated_ms=int(state.get(b"u") or 0),
        applied=int(state.get(b"n") or 0), model=(state.get(b"m") or b"").decode(),
        vector=np.frombuffer(vec, "<f4").astype(np.float32) if vec else None)
    for item in sorted(s.decode() for s in seen):
        record.item_position(item)
    entries = [json.loads(w) for w in reversed(window)]  # oldest first
    in_window = {e["e"] for e in entries}
    received = {k.decode(): int(score) for k, score in times}
    fingerprints = {k.decode(): v.decode() for k, v in ids.items()}
    older = sorted((e for e in fingerprints if e not in in_window),
                   key=lambda e: (received.get(e, 0), e))
    rows = np.zeros(len(older) + len(entries), EVENT_DTYPE)
    for n, event_id in enumerate(older):
        rows[n] = (event_id_hash(event_id), fingerprint_bits(fingerprints[event_id]),
                   received.get(event_id, 0) // 1000, 0, NO_ITEM, 0, np.nan)
    for n, e in enumerate(entries, start=len(older)):
        fp = fingerprints.get(e["e"])
        # A window event whose id already left the dedupe horizon gets id hash 0, which no id
        # hashes to in practice: as in format 1, its id may be used again.
        rows[n] = (event_id_hash(e["e"]) if fp else 0, fingerprint_bits(fp) if fp else 0,
                   received.get(e["e"], record.updated_ms) // 1000, e["ts"],
                   record.item_position(e["i"]), e["t"],
                   np.nan if e.get("v") is None else e["v"])
    record.events = rows
    record.packed_ids = [pack_event_id(e["e"]) for e in entries]
    return record


__all__ = ["EVENT_DTYPE", "HEADER", "NewEvent", "UserRecord", "event_id_hash",
           "fingerprint_bits", "from_format1", "new_epoch", "pack_event_id", "unpack_event_id"]
