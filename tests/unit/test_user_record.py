"""Record format 2: encoding, the window and dedupe horizon, and conversion from format 1."""

from __future__ import annotations

import json

import numpy as np
import pytest
from interest_server.user_record import (
    EVENT_DTYPE,
    HEADER,
    NO_ITEM,
    NewEvent,
    UserRecord,
    event_id_hash,
    fingerprint_bits,
    from_format1,
    pack_event_id,
    unpack_event_id,
)

NOW_MS = 1_800_000_000_000


def new(n: int, item: str = "i", value: float | None = None, ts: int = NOW_MS) -> NewEvent:
    return NewEvent(f"e{n}", event_id_hash(f"e{n}"), 1000 + n, f"{item}{n % 3}", 2, value,
                    ts + n)


def test_a_new_user_has_no_header_and_round_trips() -> None:
    record = UserRecord()
    assert record.header() == b""
    again = UserRecord.decode(record.encode())
    assert again.version == 0 and again.vector is None and again.items == []
    assert len(again.events) == 0 and again.event_ids == []


def test_encode_decode_round_trip() -> None:
    vec = np.linspace(-1, 1, 384).astype(np.float32)
    record = UserRecord(version=7, epoch=b"\x01" * 8, t_ref=NOW_MS, updated_ms=NOW_MS + 5,
                        applied=3, model="decayed-average", vector=vec)
    record.add_events([new(0, value=4.5), new(1), new(2, value=-0.25)], NOW_MS, 50, 0)
    raw = record.encode()
    assert raw[:HEADER.size] == record.header()
    again = UserRecord.decode(raw)
    assert (again.version, again.epoch, again.t_ref, again.updated_ms, again.applied,
            again.model) == (7, b"\x01" * 8, NOW_MS, NOW_MS + 5, 3, "decayed-average")
    np.testing.assert_array_equal(again.vector, vec)
    assert again.items == ["i0", "i1", "i2"]
    assert again.event_ids == ["e0", "e1", "e2"]
    assert again.recent(10) == [
        {"e": "e2", "i": "i2", "t": 2, "v": -0.25, "ts": NOW_MS + 2},
        {"e": "e1", "i": "i1", "t": 2, "v": None, "ts": NOW_MS + 1},
        {"e": "e0", "i": "i0", "t": 2, "v": 4.5, "ts": NOW_MS}]
    assert again.recent(1)[0]["e"] == "e2"
    assert again.history(2) == [("i1", 2, NOW_MS + 1), ("i2", 2, NOW_MS + 2)]
    assert again.history(10) == [(r["i"], r["t"], r["ts"]) for r in reversed(again.recent(10))]
    assert again.stored_fingerprints() == {event_id_hash(f"e{n}"): 1000 + n for n in range(3)}
    assert again.consumed() == {"i0", "i1", "i2"}


def test_record_size_is_exactly_its_layout() -> None:
    # What bench/memory.py's figure is made of: header and meta, the float32 vector, the
    # consumed item ids, 37 B per row and the window's id texts (NUL-separated).
    record = UserRecord(version=50, epoch=b"\x02" * 8, model="m", vector=np.ones(384, np.float32))
    record.add_events([NewEvent(f"evt-{n:06d}", n, n, f"item{n}", 1, None, NOW_MS)
                       for n in range(50)], NOW_MS, 50, 0)
    assert EVENT_DTYPE.itemsize == 37
    items = sum(len(f"item{n}") + 1 for n in range(50)) - 1
    ids = 50 * 11 - 1
    assert len(record.encode()) == 20 + 29 + 1 + 384 * 4 + 4 + items + 4 + 50 * 37 + 4 + ids


@pytest.mark.parametrize("bad", [b"", b"IR1\x00" + bytes(60), b"nonsense" * 20])
def test_decode_refuses_what_is_not_a_record(bad: bytes) -> None:
    with pytest.raises(ValueError):
        UserRecord.decode(bad)


def test_decode_refuses_a_truncated_record() -> None:
    record = UserRecord(version=1, epoch=b"\x03" * 8, vector=np.ones(4, np.float32))
    record.add_events([new(0)], NOW_MS, 50, 0)
    with pytest.raises(ValueError):
        UserRecord.decode(record.encode()[:-1])


def test_rows_outside_the_window_stay_while_inside_the_dedupe_horizon() -> None:
    record = UserRecord()
    old = NOW_MS - 10_000
    record.add_events([new(n) for n in range(5)], old, window=3, dedupe_cutoff_ms=0)
    assert len(record.events) == 5 and record.event_ids == ["e2", "e3", "e4"]
    # Later, the first batch falls out of the horizon: only the window's rows remain.
    record.add_events([new(n) for n in range(5, 7)], NOW_MS, window=3,
                      dedupe_cutoff_ms=old + 1000)
    assert record.event_ids == ["e4", "e5", "e6"]
    assert len(record.events) == 3
    assert record.stored_fingerprints().keys() == {event_id_hash(f"e{n}") for n in (4, 5, 6)}
    # The consumed set keeps every item ever consumed.
    assert record.consumed() == {"i0", "i1", "i2"}


def test_copy_does_not_share_what_a_write_changes() -> None:
    record = UserRecord(version=1, epoch=b"\x04" * 8)
    record.add_events([new(0)], NOW_MS, 50, 0)
    clone = record.copy()
    clone.add_events([new(1, item="j")], NOW_MS, 50, 0)
    assert record.items == ["i0"] and record.event_ids == ["e0"] and len(record.events) == 1
    assert clone.items == ["i0", "j1"] and len(clone.events) == 2


def test_format1_conversion_keeps_everything_a_format1_user_had() -> None:
    vec = np.arange(4, dtype="<f4")
    fp = {"old": "aa" * 12, "w1": "bb" * 12, "w2": "cc" * 12}
    state = {b"v": b"9", b"vec": vec.tobytes(), b"t": b"123", b"n": b"3", b"m": b"decayed-average",
             b"u": b"456", b"e": b"0102030405060708"}
    window = [json.dumps({"e": e, "i": i, "t": t, "v": v, "ts": ts}).encode()
              for e, i, t, v, ts in [("w2", "b", 6, 4.0, 2000), ("w1", "a", 2, None, 1000),
                                     ("w0", "a", 1, None, 500)]]  # newest first
    seen = {b"a", b"b", b"z"}
    ids = {k.encode(): v.encode() for k, v in fp.items()}  # w0 already left the horizon
    times = [(b"old", 50_000.0), (b"w1", 60_000.0), (b"w2", 70_000.0)]
    record = from_format1(state, window, seen, ids, times)
    assert (record.version, record.epoch, record.t_ref, record.applied, record.updated_ms,
            record.model) == (9, bytes.fromhex("0102030405060708"), 123, 3, 456,
                              "decayed-average")
    np.testing.assert_array_equal(record.vector, vec)
    assert record.consumed() == {"a", "b", "z"}
    assert [e["e"] for e in record.recent(50)] == ["w2", "w1", "w0"]
    assert record.recent(50)[0] == {"e": "w2", "i": "b", "t": 6, "v": 4.0, "ts": 2000}
    assert record.stored_fingerprints() == {
        event_id_hash("old"): fingerprint_bits(fp["old"]),
        event_id_hash("w1"): fingerprint_bits(fp["w1"]),
        event_id_hash("w2"): fingerprint_bits(fp["w2"]), 0: 0}
    assert record.events["item"][0] == NO_ITEM  # "old" is known for dedupe only
    assert record.events["recv_s"].tolist() == [50, 0, 60, 70]  # w0: no time kept
    again = UserRecord.decode(record.encode())
    assert again.recent(50) == record.recent(50)


def test_items_appended_after_a_decode_are_encoded() -> None:
    record = UserRecord(version=1, epoch=b"\x05" * 8)
    record.add_events([new(0)], NOW_MS, 50, 0)
    again = UserRecord.decode(record.encode())
    again.add_events([new(1, item="j"), new(2)], NOW_MS, 50, 0)
    assert UserRecord.decode(again.encode()).items == ["i0", "j1", "i2"]
    empty = UserRecord.decode(UserRecord(version=1, epoch=b"\x06" * 8).encode())
    empty.add_events([new(0)], NOW_MS, 50, 0)
    assert UserRecord.decode(empty.encode()).items == ["i0"]


@pytest.mark.parametrize("event_id", [
    "0123456789abcdef0123456789abcdef", "00" * 8, "ff" * 64, "a" * 32,
    "123e4567-e89b-12d3-a456-426614174000", "00000000-0000-0000-0000-000000000000",
    "0123456789ABCDEF0123456789ABCDEF", "abc", "0123456789abcdef0", "e-1", "ü-漢字", "\U0001f642",
    "123E4567-E89B-12D3-A456-426614174000", "123e4567e89b-12d3-a456-426614174000"])
def test_event_ids_pack_losslessly(event_id: str) -> None:
    packed = pack_event_id(event_id)
    assert unpack_event_id(packed) == event_id
    assert "\x00" not in packed and len(packed) <= len(event_id)


def test_hex_and_uuid_ids_are_stored_in_23_characters() -> None:
    assert len(pack_event_id("0123456789abcdef" * 2)) == 23
    assert len(pack_event_id("123e4567-e89b-12d3-a456-426614174000")) == 23
    record = UserRecord(version=1, epoch=b"\x07" * 8)
    ids = [f"{n:032x}" for n in range(50)]
    record.add_events([NewEvent(e, event_id_hash(e), 1, "i", 1, None, NOW_MS) for e in ids],
                      NOW_MS, 50, 0)
    again = UserRecord.decode(record.encode())
    assert again.event_ids == ids and [r["e"] for r in again.recent(50)] == ids[::-1]
    assert len(again.encode()) == len(record.encode())
    assert len("\x00".join(again.packed_ids).encode()) == 50 * 24 - 1
