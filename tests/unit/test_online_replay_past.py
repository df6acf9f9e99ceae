"""eval-online --write-past: the past of the replay's split as the trainer's input."""

from __future__ import annotations

from pathlib import Path

from interest_server.offline.event_source import read_catalog_file, read_events_file
from interest_server.offline.online_replay import ReplayEvent, time_split, write_past


def test_write_past_holds_exactly_the_events_before_the_split(tmp_path: Path) -> None:
    events = [ReplayEvent(f"u{i % 7}", f"i{i % 11}", 1_000 + i, float(1 + i % 5))
              for i in range(200)]
    events.append(ReplayEvent("u1", "i3", 1_050))  # a view (no rating) in the past
    split = time_split(events, split_time_s=1_150, valid_events=10, max_events=None)
    items = [{"item_id": f"i{n}", "text": f"item {n}", "attributes": {"genre": ["x"]}}
             for n in range(11)]
    events_path, catalog_path = write_past(split, items, tmp_path / "past")

    read = read_events_file(events_path)
    past = [*split.history, *split.valid]
    assert len(read) == len(past) == 151  # times 1000..1149 plus the view
    assert all(e.timestamp_ms < 1_150 * 1000 for e in read)  # nothing at or after the split
    got = sorted((e.user_id, e.item_id, e.timestamp_ms, e.value) for e in read)
    want = sorted((e.user_id, e.item_id, e.timestamp_s * 1000, e.rating) for e in past)
    assert got == want
    assert sorted(read_catalog_file(catalog_path).item_ids) == sorted(i["item_id"] for i in items)
