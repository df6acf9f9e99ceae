"""Record format 2: encoding, the window and dedupe horizon, and conversion from format 1."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from interest_server.state.user_record import (
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


# ---- the record keeps its parts as stored bytes: same bytes and reads as splitting them -------

T0 = 1_800_000_000_000
GOLDEN = bytes.fromhex(  # written by the record code before it kept the parts as bytes
    "495232000c000000000000000102030405060708b8d25d18a3010000a0d65d18a30100000500000000000000"
    "0f00030001646563617965642d617665726167650000003f0000a0bf00000040090000006162006100626100"
    "62030000005a5c1c905d45b8090d00000032d2496b01505c18a30100000200000002000000000000d0bfce43"
    "f314b647fd320e00000032d2496b02505c18a30100000100000002000000000000f87f44968acef4e8ee6d0f"
    "00000064d2496b03505c18a30100000300000002000000000000f03f1d0000006576742d340002456a35465a"
    "2b696245744f6b566b4a6d464264414141")


def golden_event(event_id: str, item: str, value: float | None, ts: int, fp: int) -> NewEvent:
    return NewEvent(event_id, event_id_hash(event_id), fp, item, 2, value, ts)


def test_a_record_written_before_decodes_and_is_rebuilt_byte_for_byte() -> None:
    uuid = "123e4567-e89b-12d3-a456-426614174000"
    record = UserRecord(version=12, epoch=bytes(range(1, 9)), t_ref=T0 + 99_000,
                        updated_ms=T0 + 100_000, applied=5, model="decayed-average",
                        vector=np.array([0.5, -1.25, 2.0], np.float32))
    record.add_events([golden_event("0123456789abcdef" * 2, "ab", None, T0 - 5, 11),
                       golden_event("f" * 16, "a", 4.5, T0, 12)], T0, 2, 0)
    record.add_events([golden_event("evt-3", "ba", -0.25, T0 + 1, 13),
                       golden_event("evt-4", "a", None, T0 + 2, 14)], T0 + 50_000, 2, 0)
    # The first batch leaves the horizon; evt-3 stays for dedupe only (outside the window).
    record.add_events([golden_event(uuid, "b", 1.0, T0 + 3, 15)], T0 + 100_000, 2, T0 + 10_000)
    assert record.encode() == GOLDEN
    again = UserRecord.decode(GOLDEN)
    assert again.encode() == GOLDEN
    assert again.items == ["ab", "a", "ba", "b"] and again.event_ids == ["evt-4", uuid]
    assert again.recent(10) == [
        {"e": uuid, "i": "b", "t": 2, "v": 1.0, "ts": T0 + 3},
        {"e": "evt-4", "i": "a", "t": 2, "v": None, "ts": T0 + 2}]
    assert again.history(10) == [("a", 2, T0 + 2), ("b", 2, T0 + 3)]
    assert again.stored_fingerprints() == {event_id_hash(e): fp for e, fp
                                           in [("evt-3", 13), ("evt-4", 14), (uuid, 15)]}
    assert again.events["recv_s"].tolist() == [T0 // 1000 + 50] * 2 + [T0 // 1000 + 100]


class PlainRecord:
    """The record's rules on plain lists, as first written (the reference for the byte form)."""

    def __init__(self) -> None:
        self.items: list[str] = []
        self.rows: list[tuple] = []
        self.ids: list[str] = []

    def add(self, new: list[NewEvent], received_ms: int, window: int, cutoff_ms: int) -> None:
        for e in new:
            if e.item_id not in self.items:
                self.items.append(e.item_id)
            self.rows.append((e.id_hash, e.fingerprint, received_ms // 1000, e.timestamp_ms,
                              self.items.index(e.item_id), e.type, e.value))
        outside, cutoff_s = len(self.rows) - window, -(-cutoff_ms // 1000)
        self.rows = [r for n, r in enumerate(self.rows) if n >= outside or r[2] >= cutoff_s]
        self.ids = (self.ids + [e.event_id for e in new])[-window:] if window > 0 else []

    def check(self, record: UserRecord) -> None:
        rows = [(*r[:6], None if r[6] != r[6] else r[6]) for r in record.events.tolist()]
        assert rows == self.rows
        assert record.items == self.items and record.consumed() == set(self.items)
        assert record.event_ids == self.ids
        assert record.packed_ids == [pack_event_id(e) for e in self.ids]
        window = [(e, *r) for e, r in zip(self.ids, self.rows[len(self.rows) - len(self.ids):],
                                           strict=True)]
        for limit in (0, 1, 3, 100):
            newest = window[len(window) - min(limit, len(window)):]
            assert record.history(limit) == [(self.items[r[5]], r[6], r[4]) for r in newest]
            assert record.recent(limit) == [
                {"e": r[0], "i": self.items[r[5]], "t": r[6], "v": r[7], "ts": r[4]}
                for r in reversed(newest)]
        known = {r[0]: r[1] for r in self.rows}
        assert record.stored_fingerprints() == known
        # Stored hashes, unknown ones, the bytes of timestamps (found, but not as an id), -1.
        probe = [*known, 12345, -1, *(r[3] % 2**64 for r in self.rows)]
        assert record.fingerprints_of(probe) == {h: known[h] for h in probe if h in known}


ITEM_IDS = st.sampled_from(["a", "ab", "ba", "b", "aba", "i1", "i10", "i100", "ü", "a b"]) | \
    st.text(min_size=1, max_size=4).filter(str.isprintable)
EVENT_IDS = st.integers(0, 2**128 - 1).map(lambda n: f"{n:032x}") | \
    st.uuids().map(str) | st.text(min_size=1, max_size=6).filter(str.isprintable)
NEW_EVENTS = st.lists(st.builds(
    lambda e, fp, item, kind, value, ts: NewEvent(e, event_id_hash(e), fp, item, kind, value, ts),
    EVENT_IDS, st.integers(0, 2**32 - 1), ITEM_IDS, st.integers(0, 255),
    st.none() | st.floats(allow_nan=False), st.integers(-(2**40), 2**45)), max_size=12)


@settings(max_examples=150, deadline=None)
@given(steps=st.lists(st.tuples(NEW_EVENTS, st.integers(0, 10**6), st.integers(1, 8),
                                st.integers(0, 10**6), st.sampled_from(["keep", "decode", "copy"])),
                      max_size=8))
def test_writes_and_reads_agree_with_plain_lists(steps: list) -> None:
    record, plain = UserRecord(version=1, epoch=b"\x08" * 8), PlainRecord()
    for new_events, received_ms, window, cutoff_ms, then in steps:
        record.add_events(new_events, received_ms, window, cutoff_ms)
        plain.add(new_events, received_ms, window, cutoff_ms)
        plain.check(record)
        raw = record.encode()
        assert UserRecord.decode(raw).encode() == raw
        if then == "decode":  # reads and writes on the bytes as decoded
            record = UserRecord.decode(raw)
        elif then == "copy":
            record = record.copy()
        plain.check(record)


def test_item_position_finds_ids_that_are_prefixes_or_suffixes_of_others() -> None:
    stored = ["ab", "a", "ba", "aba", "b"]
    raw = UserRecord(version=1, epoch=b"\x09" * 8, items=stored).encode()
    for fresh in (UserRecord.decode(raw), UserRecord(items=stored)):
        assert [fresh.item_position(i) for i in ["a", "b", "ab", "ba", "aba"]] == [1, 4, 0, 2, 3]
        assert fresh.item_position("bab") == 5 and fresh.item_position("bab") == 5
        assert fresh.items == ["ab", "a", "ba", "aba", "b", "bab"]
    # Past a few look-ups a record keeps a dict of positions: the same answers.
    many = UserRecord.decode(raw)
    ids = [f"x{n}" for n in range(30)]
    assert [many.item_position(i) for i in ids] == list(range(5, 35))
    assert [many.item_position(i) for i in ["aba", *ids]] == [3, *range(5, 35)]
    assert UserRecord.decode(many.encode()).items == ["ab", "a", "ba", "aba", "b", *ids]


def test_an_item_added_before_the_items_are_read_shows_in_them() -> None:
    record = UserRecord.decode(UserRecord(version=1, epoch=b"\x0a" * 8, items=["a"]).encode())
    assert record.item_position("b") == 1
    assert record.items == ["a", "b"] and record.item_position("c") == 2
    assert record.items == ["a", "b", "c"]  # a list already split keeps up


def test_many_rows_outside_the_window_are_trimmed_row_by_row() -> None:
    # More than a handful of rows outside the window, received out of order (another server's
    # clock): each one is kept exactly when it is inside the dedupe horizon.
    record, plain = UserRecord(version=1, epoch=b"\x0b" * 8), PlainRecord()
    for n in range(200):
        batch = [new(n)]
        received_ms = NOW_MS + (n % 7) * 60_000 - (n % 3) * 1000
        record.add_events(batch, received_ms, 10, 0)
        plain.add(batch, received_ms, 10, 0)
    for window, cutoff in [(10, NOW_MS + 3 * 60_000), (5, NOW_MS + 5 * 60_000), (3, 0)]:
        batch = [new(500 + window)]
        record.add_events(batch, NOW_MS + 600_000, window, cutoff)
        plain.add(batch, NOW_MS + 600_000, window, cutoff)
        plain.check(record)
        assert UserRecord.decode(record.encode()).encode() == record.encode()


def test_fingerprints_of_skips_a_hash_found_inside_another_field() -> None:
    record = UserRecord(version=1, epoch=b"\x0c" * 8)
    # Row 1's timestamp has the bytes of row 0's id hash; 99's bytes are only a timestamp.
    record.add_events([NewEvent("a", 7, 70, "i", 1, None, 99),
                       NewEvent("b", 8, 80, "i", 1, None, 7)], NOW_MS, 50, 0)
    assert record.fingerprints_of([7, 8, 99, 0]) == {7: 70, 8: 80}
    assert record.fingerprints_of([]) == {}
    assert UserRecord().fingerprints_of([7]) == {}


def test_a_converted_record_round_trips_and_answers_like_a_decoded_one() -> None:
    seen = {f"s{n}".encode() for n in range(20)} | {b"a", b"b"}
    window = [json.dumps({"e": f"w{n}", "i": "ab"[n % 2], "t": 1, "v": None, "ts": n}).encode()
              for n in range(3)][::-1]
    ids = {b"w1": b"ab" * 12, b"w2": b"cd" * 12, b"gone": b"ef" * 12}
    record = from_format1({b"v": b"2", b"e": b"0102030405060708"}, window, seen, ids,
                          [(b"gone", 1000.0), (b"w1", 2000.0), (b"w2", 3000.0)])
    raw = record.encode()
    again = UserRecord.decode(raw)
    assert again.encode() == raw and again.items == record.items == sorted(s.decode() for s in seen)
    assert again.recent(50) == record.recent(50) and again.history(2) == record.history(2)
    assert again.stored_fingerprints() == record.stored_fingerprints()
    assert again.fingerprints_of([0, event_id_hash("gone")]) == {
        0: 0, event_id_hash("gone"): fingerprint_bits("ef" * 12)}
    assert [again.item_position(i) for i in ("a", "b", "s7", "new")] == [0, 1, 2 + 17, 22]


def test_events_are_a_read_only_view_and_can_be_replaced() -> None:
    record = UserRecord(version=1, epoch=b"\x0d" * 8)
    record.add_events([new(0), new(1)], NOW_MS, 50, 0)
    with pytest.raises(ValueError):
        record.events["fp"][0] = 1
    rows = record.events.copy()
    rows["fp"][0] = 5
    record.events = rows
    assert record.stored_fingerprints()[event_id_hash("e0")] == 5
    assert UserRecord.decode(record.encode()).events.tobytes() == rows.tobytes()


def test_decode_refuses_ids_that_are_not_utf8() -> None:
    raw = UserRecord(version=1, epoch=b"\x0e" * 8, items=["ab"]).encode()
    with pytest.raises(ValueError):
        UserRecord.decode(raw.replace(b"ab", b"a\xff"))
