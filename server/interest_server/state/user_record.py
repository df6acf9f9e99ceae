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

Spec: docs/storage-format.md
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import struct
from binascii import b2a_base64
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

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
ROW = struct.Struct("<QIIqIBd")
"""One EVENT_DTYPE row as struct packs it (the same bytes)."""
_ROW_SIZE = ROW.size
_ID_FP = struct.Struct("<QI25x")
"""A row's id hash and fingerprint."""
_ID, _FP = struct.Struct("<Q"), struct.Struct("<I")
_RECV = struct.Struct("<12xI21x")
"""A row's receive time."""
_PREFIX = struct.Struct("<" + HEADER.format.lstrip("<") + META.format.lstrip("<"))
"""HEADER then META."""
assert ROW.size == _ID_FP.size == _RECV.size == EVENT_DTYPE.itemsize


def event_id_hash(event_id: str) -> int:
    """64-bit hash of an event id (collisions need ~2^32 ids of one user)."""
    return int.from_bytes(hashlib.blake2b(event_id.encode(), digest_size=8).digest(), "little")


def fingerprint_bits(fingerprint: str) -> int:
    """The 32 bits of a payload fingerprint (hex) that a record keeps."""
    return int(fingerprint[:8], 16)


def new_epoch() -> bytes:
    """A fresh incarnation id."""
    return os.urandom(8)


def _split(blob: bytes, count: int) -> list[str]:
    """The `count` NUL-joined texts of a blob (count tells [] from [""])."""
    return blob.decode().split("\x00") if count else []


_HEX = re.compile(r"(?:[0-9a-f]{2}){8,64}")
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_HEX_TAG, _UUID_TAG = "\x01", "\x02"


def _pack_id(event_id: str) -> bytes:
    """pack_event_id, utf-8 encoded (what add_events appends to the ids blob)."""
    if _HEX.fullmatch(event_id):
        return b"\x01" + b2a_base64(bytes.fromhex(event_id), newline=False).rstrip(b"=")
    if _UUID.fullmatch(event_id):
        raw = bytes.fromhex(event_id.replace("-", ""))
        return b"\x02" + b2a_base64(raw, newline=False).rstrip(b"=")
    return event_id.encode()


def pack_event_id(event_id: str) -> str:
    """The stored form of an event id: lower-case hex (16-128 digits) and canonical UUIDs as a
    tag + unpadded base64 of their bytes, anything else as it is."""
    return _pack_id(event_id).decode()


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


_NAN = float("nan")
_INDEX_AFTER = 8
"""item_position looks an item up in the items blob until this many look-ups on one record,
then builds a dict of every position (a write adds one or a few events; a conversion many)."""
_SCAN_ROWS = 64
"""Rows outside the window up to which trimming reads receive times with struct, not numpy."""


class UserRecord:
    """A decoded record. `events` is a (read-only) structured array of EVENT_DTYPE, oldest
    first; `packed_ids` are the stored id texts (pack_event_id) of the newest len(packed_ids)
    rows; `items` are the consumed item ids, an event's item is its position there.

    The record keeps the three variable parts as their stored bytes (items and ids NUL-joined,
    the rows packed) and splits or views them only when a caller reads `items`, `packed_ids` or
    `events`: a write (decode, dedupe look-up, add events, encode) mostly splices bytes."""

    __slots__ = ("version", "epoch", "t_ref", "updated_ms", "applied", "model", "vector",
                 "_items_blob", "_n_items", "_items", "_positions", "_finds", "_rows",
                 "_ids_blob", "_n_ids", "_packed")

    def __init__(self, version: int = 0, epoch: bytes = b"", t_ref: int = 0,
                 updated_ms: int = 0, applied: int = 0, model: str = "",
                 vector: np.ndarray | None = None, items: Sequence[str] | None = None,
                 events: np.ndarray | None = None, packed_ids: Sequence[str] | None = None) -> None:
        self.version = version
        self.epoch = epoch
        self.t_ref = t_ref
        self.updated_ms = updated_ms
        self.applied = applied
        self.model = model
        self.vector = vector
        self._positions: dict[str, int] | None = None
        self._finds = 0
        self.items = [] if items is None else items
        self._rows = b"" if events is None else _row_bytes(events)
        self.packed_ids = [] if packed_ids is None else packed_ids

    # ---- the stored parts, split on demand ------------------------------------------------

    @property
    def items(self) -> list[str]:
        """The consumed item ids (append only through item_position)."""
        if self._items is None:
            self._items = _split(self._items_blob, self._n_items)
        return self._items

    @items.setter
    def items(self, items: Sequence[str]) -> None:
        self._items = list(items)
        self._items_blob = SEP.join(i.encode() for i in self._items)
        self._n_items = len(self._items)
        self._positions = None

    @property
    def events(self) -> np.ndarray:
        """The rows as a read-only structured array of EVENT_DTYPE (writes build anew)."""
        return np.frombuffer(self._rows, EVENT_DTYPE)

    @events.setter
    def events(self, rows: np.ndarray) -> None:
        self._rows = _row_bytes(rows)

    @property
    def packed_ids(self) -> list[str]:
        """The stored id texts of the newest len(packed_ids) rows."""
        if self._packed is None:
            self._packed = _split(self._ids_blob, self._n_ids)
        return self._packed

    @packed_ids.setter
    def packed_ids(self, ids: Sequence[str]) -> None:
        self._packed = list(ids)
        self._ids_blob = "\x00".join(self._packed).encode()
        self._n_ids = len(self._packed)

    def __repr__(self) -> str:
        return (f"UserRecord(version={self.version!r}, epoch={self.epoch!r}, "
                f"t_ref={self.t_ref!r}, updated_ms={self.updated_ms!r}, "
                f"applied={self.applied!r}, model={self.model!r}, vector={self.vector!r}, "
                f"items={self.items!r}, events={self.events!r}, "
                f"packed_ids={self.packed_ids!r})")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, UserRecord):
            return NotImplemented
        return self.encode() == other.encode()

    __hash__ = None  # type: ignore[assignment]

    # ---- encoding -----------------------------------------------------------------------

    def header(self) -> bytes:
        """The compare-and-set guard: b'' for a user with no record yet."""
        return HEADER.pack(MAGIC, self.version, self.epoch) if self.epoch else b""

    def encode(self) -> bytes:
        """The record's bytes."""
        model = self.model.encode()
        vector = self.vector
        if vector is None:
            vec, dim = b"", 0
        else:
            vec, dim = np.asarray(vector, "<f4").tobytes(), len(vector)
        items, rows, ids = self._items_blob, self._rows, self._ids_blob
        return b"".join([
            _PREFIX.pack(MAGIC, self.version, self.epoch, self.t_ref, self.updated_ms,
                         self.applied, len(model), dim, VECTOR_F32 if dim else 0),
            model, vec, LENGTH.pack(len(items)), items,
            LENGTH.pack(len(rows) // _ROW_SIZE), rows, LENGTH.pack(len(ids)), ids])

    @classmethod
    def decode(cls, raw: bytes) -> UserRecord:
        """Inverse of encode; raises ValueError on anything that is not a format-2 record."""
        if len(raw) < _PREFIX.size:
            raise ValueError("user record too short")
        magic, version, epoch, t_ref, updated_ms, applied, model_len, dim, dtype = \
            _PREFIX.unpack_from(raw, 0)
        if magic != MAGIC:
            raise ValueError(f"not a user record (magic {magic!r})")
        pos = _PREFIX.size
        model = raw[pos:pos + model_len].decode()
        pos += model_len
        vector = None
        try:
            if dtype == VECTOR_F32:
                vector = np.frombuffer(raw, "<f4", dim, pos).astype(np.float32)
                pos += 4 * dim
            (n,) = LENGTH.unpack_from(raw, pos)
            items = raw[pos + 4:pos + 4 + n]
            pos += 4 + n
            (count,) = LENGTH.unpack_from(raw, pos)
            pos += 4
            end = pos + count * _ROW_SIZE
            rows = raw[pos:end]
            (n,) = LENGTH.unpack_from(raw, end)
        except struct.error as e:
            raise ValueError(f"user record truncated: {e}") from None
        pos = end + 4
        ids = raw[pos:pos + n]
        if pos + n != len(raw):
            raise ValueError("user record has trailing or missing bytes")
        if not (items.isascii() and ids.isascii()):  # split lazily, but refuse bad text now
            items.decode()
            ids.decode()
        record = cls.__new__(cls)
        record.version, record.epoch, record.t_ref = version, epoch, t_ref
        record.updated_ms, record.applied, record.model = updated_ms, applied, model
        record.vector = vector
        record._items_blob, record._items = items, None
        record._n_items = items.count(SEP) + 1 if items else 0
        record._positions, record._finds = None, 0
        record._rows = rows
        record._ids_blob, record._packed = ids, None
        record._n_ids = ids.count(SEP) + 1 if ids else 0
        return record

    # ---- reads --------------------------------------------------------------------------

    @property
    def event_ids(self) -> list[str]:
        """The id texts of the newest len(event_ids) rows (the window's)."""
        return [unpack_event_id(e) for e in self.packed_ids]

    def stored_fingerprints(self) -> dict[int, int]:
        """event id hash -> fingerprint bits of every event inside the dedupe horizon."""
        return dict(_ID_FP.iter_unpack(self._rows))

    def fingerprints_of(self, id_hashes: Iterable[int]) -> dict[int, int]:
        """stored_fingerprints() restricted to `id_hashes` (what a dedupe check of a few new
        events needs), found in the stored rows without building the whole dict."""
        rows, out = self._rows, {}
        for h in id_hashes:
            if not 0 <= h < 1 << 64:  # no row holds it
                continue
            needle, end = _ID.pack(h), len(rows)
            while (at := rows.rfind(needle, 0, end)) >= 0:  # the newest row, as in the dict
                if at % _ROW_SIZE == 0:
                    out[h] = _FP.unpack_from(rows, at + 8)[0]
                    break
                end = at + len(needle) - 1  # a match inside another field: look further back
        return out

    def _newest(self, limit: int) -> tuple[int, Iterable[tuple]]:
        """How many window rows up to `limit` there are, and those rows (oldest first)."""
        n = min(limit, self._n_ids, len(self._rows) // _ROW_SIZE)
        if n <= 0:
            return 0, ()
        return n, ROW.iter_unpack(self._rows[len(self._rows) - n * _ROW_SIZE:])

    def recent(self, limit: int) -> list[dict]:
        """Up to `limit` newest window events, newest first, as {e, i, t, v, ts} dicts."""
        n, rows = self._newest(limit)
        if not n:
            return []
        ids = [unpack_event_id(e) for e in self.packed_ids[self._n_ids - n:]]
        items = self.items
        out = []
        for row, event_id in zip(rows, ids, strict=True):
            _, _, _, ts, item, etype, value = row
            out.append({"e": event_id, "i": items[item] if item != NO_ITEM else "",
                        "t": etype, "v": None if value != value else value, "ts": ts})
        out.reverse()
        return out

    def history(self, limit: int) -> list[tuple[str, int, int]]:
        """Up to `limit` newest window events, oldest first, as (item id, type, timestamp):
        what a model reading recent events needs, without unpacking the event ids."""
        n, rows = self._newest(limit)
        if not n:
            return []
        items = self.items
        return [(items[item] if item != NO_ITEM else "", etype, ts)
                for _, _, _, ts, item, etype, _ in rows]

    def consumed(self) -> set[str]:
        """Every item the user consumed."""
        return set(self.items)

    # ---- writes -------------------------------------------------------------------------

    def item_position(self, item_id: str) -> int:
        """The item's position in `items`, appending it when new."""
        positions = self._positions
        if positions is not None:
            pos = positions.get(item_id)
            if pos is not None:
                return pos
        elif self._finds >= _INDEX_AFTER:
            self._positions = {item: n for n, item in enumerate(self.items)}
            return self.item_position(item_id)
        else:
            self._finds += 1
            blob = self._items_blob
            if self._n_items:
                at = (SEP + blob + SEP).find(SEP + item_id.encode() + SEP)
                if at >= 0:
                    return blob.count(SEP, 0, at)
        pos = self._n_items
        encoded = item_id.encode()
        self._items_blob = self._items_blob + SEP + encoded if pos else encoded
        self._n_items = pos + 1
        if self._items is not None:
            self._items.append(item_id)
        if positions is not None:
            positions[item_id] = pos
        return pos

    def add_events(self, new: Sequence[NewEvent], received_ms: int, window: int,
                   dedupe_cutoff_ms: int) -> None:
        """Append new events (arrival order), then drop rows that are outside both the window
        and the dedupe horizon, and id texts outside the window."""
        recv_s = received_ms // 1000
        position, pack = self.item_position, ROW.pack
        rows = self._rows + b"".join([
            pack(e.id_hash, e.fingerprint, recv_s, e.timestamp_ms, position(e.item_id), e.type,
                 _NAN if e.value is None else e.value) for e in new])
        total = len(rows) // _ROW_SIZE
        outside = min(total - window, total)  # rows before this index are outside the window
        if outside > 0:
            cutoff_s = -(-dedupe_cutoff_ms // 1000)  # kept: received at or after the cutoff
            head = outside * _ROW_SIZE
            if outside <= _SCAN_ROWS:
                keep = [n for n, (t,) in enumerate(_RECV.iter_unpack(rows[:head]))
                        if t >= cutoff_s]
                if len(keep) < outside:
                    rows = b"".join([rows[n * _ROW_SIZE:(n + 1) * _ROW_SIZE] for n in keep]) \
                        + rows[head:]
            else:
                older = np.frombuffer(rows, EVENT_DTYPE, outside)
                mask = older["recv_s"] >= cutoff_s
                if not mask.all():
                    rows = older[mask].tobytes() + rows[head:]
        self._rows = rows
        blob, count = self._ids_blob, self._n_ids
        added = new[max(len(new) - window, 0):]
        if added:
            texts = SEP.join([_pack_id(e.event_id) for e in added])
            blob = blob + SEP + texts if count else texts
            count += len(added)
            if self._packed is not None:
                self._packed.extend(texts.decode().split("\x00"))
        if count > window:
            drop = count - window
            if drop >= count:
                blob, count = b"", 0
            else:
                at = -1
                for _ in range(drop):
                    at = blob.find(SEP, at + 1)
                blob, count = blob[at + 1:], window
            if self._packed is not None:
                del self._packed[:drop]
        self._ids_blob, self._n_ids = blob, count

    def copy(self) -> UserRecord:
        """A deep enough copy to modify without touching this one."""
        other = UserRecord.__new__(UserRecord)
        other.version, other.epoch, other.t_ref = self.version, self.epoch, self.t_ref
        other.updated_ms, other.applied, other.model = self.updated_ms, self.applied, self.model
        other.vector = self.vector
        # The stored parts are bytes (immutable): shared until a write replaces them.
        other._items_blob, other._n_items = self._items_blob, self._n_items
        other._items = None if self._items is None else list(self._items)
        other._positions = None if self._positions is None else dict(self._positions)
        other._finds = self._finds
        other._rows = self._rows
        other._ids_blob, other._n_ids = self._ids_blob, self._n_ids
        other._packed = None if self._packed is None else list(self._packed)
        return other


def _row_bytes(rows: np.ndarray) -> bytes:
    return np.asarray(rows).astype(EVENT_DTYPE, copy=False).tobytes()


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
