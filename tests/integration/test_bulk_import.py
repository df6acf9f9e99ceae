"""`interest-server import`: a historical log through StreamEvents, interrupted and resumed."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from interest.v1 import interest_pb2 as pb
from interest_client import InterestClient
from interest_server.api.app import RunningServer
from interest_server.offline.import_formats import (
    MS_THRESHOLD,
    ImportFileError,
    build_event,
    detect_layout,
)
from interest_server.offline.import_stream import import_file

from .conftest import catalog_items

USERS = [f"u{n}" for n in range(12)]
TYPES = ["like", "view", "click", "rating", "dislike", "purchase", "skip"]
ROWS = 360
UNKNOWN_LINES = {300: "404", 320: "zzz", 340: "404"}
INVALID_LINE = 330
BATCH = 40


def _history(path: Path) -> dict[int, dict[str, Any]]:
    """Write a TSV log and return its valid rows with known items, by line number."""
    rng = random.Random(7)
    rows = {}
    with path.open("w", encoding="utf-8") as f:
        f.write("user_id\titem_id\ttype\tvalue\ttimestamp\n")
        for line in range(2, ROWS + 2):
            user, item, kind = rng.choice(USERS), str(rng.randint(1, 30)), rng.choice(TYPES)
            value = str(rng.randint(1, 5)) if kind == "rating" else ""
            ts = 1_700_000_000 + line * 60
            if line in UNKNOWN_LINES:
                item = UNKNOWN_LINES[line]
            if line == INVALID_LINE:
                kind, value = "rating", "five"
            f.write(f"{user}\t{item}\t{kind}\t{value}\t{ts}\n")
            if line not in UNKNOWN_LINES and line != INVALID_LINE:
                rows[line] = {"user_id": user, "item_id": item, "type": kind,
                              "value": float(value) if value else None,
                              "timestamp_ms": ts * 1000}
    return rows


@pytest.fixture
def client(server: RunningServer, catalog: list[pb.Item]) -> Iterator[InterestClient]:
    with InterestClient(server.target, timeout_s=30) as c:
        yield c


def _oracle(client: InterestClient, rows: dict[int, dict[str, Any]]) -> None:
    """The same events streamed once, in one IngestEvents per user, under users `ref-<user>`."""
    by_user: dict[str, list[dict[str, Any]]] = {}
    for line, row in rows.items():
        by_user.setdefault(row["user_id"], []).append(
            dict(row, user_id="ref-" + row["user_id"], event_id=f"ref:{line}"))
    for events in by_user.values():
        ack = client.ingest(events)
        assert ack.applied == len(events)


def _assert_equals_oracle(client: InterestClient, rows: dict[int, dict[str, Any]]) -> None:
    counts = Counter(row["user_id"] for row in rows.values())
    for user in USERS:
        got = client.get_user_state(user, include_vector=True)
        want = client.get_user_state("ref-" + user, include_vector=True)
        assert got.event_count == want.event_count == counts[user], user
        assert got.consumed_count == want.consumed_count, user
        np.testing.assert_allclose(got.interest_vector, want.interest_vector, atol=1e-5)


def test_interrupted_import_resumes_and_equals_streaming_once(
        client: InterestClient, tmp_path: Path) -> None:
    path = tmp_path / "history.tsv"
    rows = _history(path)
    checkpoint = tmp_path / "history.checkpoint.json"
    _oracle(client, rows)

    first = import_file(client, path, limit=150, checkpoint_path=checkpoint, batch_size=BATCH,
                        progress=False)
    assert (first.sent, first.applied, first.duplicate, first.complete) == (150, 150, 0, False)
    assert first.line == 151  # header + 150 rows, all acknowledged
    saved = json.loads(checkpoint.read_text())
    assert saved["line"] == 151 and saved["complete"] is False
    assert saved["id_prefix"] == "history.tsv"

    # A crash between two checkpoint writes: the file names an earlier line than what landed.
    saved["line"] = 101
    checkpoint.write_text(json.dumps(saved))
    second = import_file(client, path, checkpoint_path=checkpoint, batch_size=BATCH,
                         progress=False)
    assert second.start_line == 101 and second.complete and second.line == ROWS + 1
    assert second.duplicate == 50  # lines 102..151 landed before; not applied again
    assert second.applied == len(rows) - 150
    assert second.rejected == {"UNKNOWN_ITEM": len(UNKNOWN_LINES)}
    assert second.unknown_items == Counter(UNKNOWN_LINES.values())
    assert second.invalid == 1 and second.invalid_lines[0].startswith(f"history.tsv:{INVALID_LINE}")
    saved = json.loads(checkpoint.read_text())
    assert saved["complete"] is True and saved["line"] == ROWS + 1
    assert saved["totals"]["applied"] == len(rows)
    _assert_equals_oracle(client, rows)

    # Complete: a rerun sends nothing; a forced rerun applies nothing again.
    third = import_file(client, path, checkpoint_path=checkpoint, progress=False)
    assert third.sent == 0 and third.complete
    versions = {u: client.get_user_state(u).version for u in USERS}
    again = import_file(client, path, checkpoint_path=checkpoint, restart=True,
                        batch_size=BATCH, progress=False)
    assert (again.applied, again.duplicate) == (0, len(rows))
    assert {u: client.get_user_state(u).version for u in USERS} == versions
    _assert_equals_oracle(client, rows)


class _InterruptAfter:
    """A client whose event stream raises KeyboardInterrupt after `n` acks (Ctrl-C)."""

    def __init__(self, client: InterestClient, n: int) -> None:
        self.client, self.n = client, n

    def stream_events(self, events: Any, **kwargs: Any) -> Iterator[pb.EventAck]:
        for count, ack in enumerate(self.client.stream_events(events, **kwargs), 1):
            yield ack
            if count == self.n:
                raise KeyboardInterrupt


def test_ctrl_c_keeps_the_last_acknowledged_line(client: InterestClient, tmp_path: Path) -> None:
    path = tmp_path / "history.tsv"
    rows = _history(path)
    checkpoint = tmp_path / "ckpt.json"
    _oracle(client, rows)
    interrupting: Any = _InterruptAfter(client, 120)
    with pytest.raises(KeyboardInterrupt):
        import_file(interrupting, path, checkpoint_path=checkpoint, batch_size=BATCH,
                    max_in_flight=4, progress=False)
    assert json.loads(checkpoint.read_text())["line"] == 121
    resumed = import_file(client, path, checkpoint_path=checkpoint, batch_size=BATCH,
                          progress=False)
    assert resumed.start_line == 121 and resumed.complete
    # Batches in flight at the interrupt may have landed: they come back DUPLICATE.
    assert resumed.applied + resumed.duplicate == len(rows) - 120
    assert resumed.duplicate <= 4 * BATCH
    _assert_equals_oracle(client, rows)


def test_command_line_import(server: RunningServer, catalog: list[pb.Item],
                             tmp_path: Path) -> None:
    path = tmp_path / "history.tsv"
    rows = _history(path)
    command = [sys.executable, "-m", "interest_server.cli", "import", str(path), "--target",
               server.target, "--no-progress", "--log-level", "WARNING", "--skip-lines", "1",
               "--batch-size", "100"]
    env = dict(os.environ, INTEREST_TARGET="")
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=60,
                          env=env)
    assert done.returncode == 1, done.stderr  # some events were rejected
    assert f"applied {len(rows)}, duplicate 0, rejected 3, invalid rows 1" in done.stdout
    assert "rejected UNKNOWN_ITEM: 3" in done.stdout and "404 (2)" in done.stdout
    saved = json.loads((tmp_path / "history.tsv.import.json").read_text())
    assert saved["complete"] is True
    rerun = subprocess.run(command[:-4] + ["--restart"], cwd=tmp_path, capture_output=True,
                           text=True, timeout=60, env=env)
    assert f"applied 0, duplicate {len(rows)}" in rerun.stdout, rerun.stderr


def test_command_line_import_into_a_tenant(server: RunningServer, tmp_path: Path) -> None:
    with InterestClient(server.target, tenant="acme") as acme:
        acme.upsert_items(catalog_items())
    path = tmp_path / "history.tsv"
    rows = _history(path)
    command = [sys.executable, "-m", "interest_server.cli", "import", str(path), "--target",
               server.target, "--no-progress", "--log-level", "WARNING", "--tenant", "acme"]
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=60,
                          env=dict(os.environ, INTEREST_TARGET=""))
    assert f"applied {len(rows)}, duplicate 0, rejected 3, invalid rows 1" in done.stdout, \
        done.stderr
    assert json.loads((tmp_path / "history.tsv.acme.import.json").read_text())["complete"]
    users = {r["user_id"] for r in rows.values()}
    with InterestClient(server.target, tenant="acme") as acme, \
            InterestClient(server.target) as default:
        assert sum(acme.get_user_state(u).event_count for u in users) == len(rows)
        assert all(default.get_user_state(u).version == 0 for u in users)


# -- formats (no server) ------------------------------------------------------------------------

def _first_event(path: Path, **kwargs: Any) -> pb.Event:
    layout = detect_layout(path, **kwargs)
    lines = path.read_text().splitlines()
    row = lines[1 if layout.header else 0].split(layout.delimiter)
    return build_event(row, 2 if layout.header else 1, layout, path.name, {})


def test_recbole_inter_is_ratings_in_seconds(tmp_path: Path) -> None:
    path = tmp_path / "ml-100k.inter"
    path.write_text("user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
                    "196\t242\t3\t881250949\n")
    assert detect_layout(path).format == "recbole"
    event = _first_event(path)
    assert (event.event_id, event.user_id, event.item_id) == ("ml-100k.inter:2", "196", "242")
    assert event.type == pb.EVENT_TYPE_RATING and event.value == 3.0
    assert event.timestamp_ms == 881250949000


def test_grouplens_u_data_has_no_header(tmp_path: Path) -> None:
    path = tmp_path / "u.data"
    path.write_text("196\t242\t3\t881250949\n186\t302\t3\t891717742\n")
    layout = detect_layout(path)
    assert (layout.format, layout.header) == ("grouplens", False)
    event = _first_event(path)
    assert event.event_id == "u.data:1" and event.type == pb.EVENT_TYPE_RATING
    assert event.timestamp_ms == 881250949000


def test_generic_csv_columns(tmp_path: Path) -> None:
    path = tmp_path / "log.csv"
    path.write_text("event_id,userId,movieId,event,timestamp_ms\nabc,7,9,PURCHASE,1700000000123\n")
    event = _first_event(path)
    assert (event.event_id, event.user_id, event.item_id) == ("abc", "7", "9")
    assert event.type == pb.EVENT_TYPE_PURCHASE and event.timestamp_ms == 1700000000123
    assert not event.HasField("value")

    implicit = tmp_path / "implicit.csv"
    implicit.write_text("user,item,timestamp\n1,2,2024-01-02T03:04:05Z\n")
    event = _first_event(implicit)
    assert event.type == pb.EVENT_TYPE_VIEW and event.timestamp_ms == 1704164645000
    assert _first_event(implicit, event_type="click").type == pb.EVENT_TYPE_CLICK

    millis = tmp_path / "ms.csv"
    millis.write_text(f"user_id,item_id,timestamp\n1,2,{int(MS_THRESHOLD) + 5}\n")
    assert _first_event(millis).timestamp_ms == int(MS_THRESHOLD) + 5

    headless = tmp_path / "bad.csv"
    headless.write_text("a,b,c\n1,2,3\n")
    with pytest.raises(ImportFileError, match="header lacks"):
        detect_layout(headless)
