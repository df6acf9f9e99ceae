"""Shared helpers for the reliability tests: real Redis and server processes, and the oracle.

The oracle recomputes a user's state from a set of events with the same interest model the
server uses, independently of the server's write path, and compares it with what Redis holds.
"""

from __future__ import annotations

import contextlib
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np
import pytest
import redis
from interest.v1 import interest_pb2 as pb
from interest_server.config import Settings
from interest_server.events import EventRecord, EventType
from interest_server.model.interest_model import DecayedAverageModel, WeightedItem, event_weight
from interest_server.ops.redis_launcher import EmbeddedRedis, free_port
from interest_server.state.keys import item_key, user_keys
from interest_server.state.user_record import UserRecord, event_id_hash, fingerprint_bits

from tests.conftest import server_child_env

# Reused from the integration suite: the session model, the catalog, event and settings builders.
from tests.integration.conftest import (  # noqa: F401  (encoder is a fixture)
    GENRES,
    ServerProcess,
    catalog_items,
    encoder,
    event,
    settings_for,
)

ITEM_IDS = sorted(GENRES, key=int)
BASE_TS_MS = 1_767_225_600_000  # 2026-01-01
SPAN_MS = 10 * 86_400_000  # events spread over ten days, so decay matters but stays moderate
KINDS = [pb.EVENT_TYPE_VIEW, pb.EVENT_TYPE_CLICK, pb.EVENT_TYPE_LIKE, pb.EVENT_TYPE_DISLIKE,
         pb.EVENT_TYPE_PURCHASE, pb.EVENT_TYPE_SKIP, pb.EVENT_TYPE_RATING]
HALF_LIFE_S = Settings().half_life_s


# ---- processes ----------------------------------------------------------------------------

def start_server(redis_url: str, port: int = 0, env: dict[str, str] | None = None,
                 timeout_s: float = 120.0) -> ServerProcess:
    """`interest-server serve` on `port` (0: a free one); returns once it is SERVING.

    Like tests.integration.conftest.start_server_process, plus a fixed port (to restart on
    the same address) and INTEREST_* settings through the environment.
    """
    full_env = server_child_env(**(env or {}))
    proc = subprocess.Popen(
        [sys.executable, "-m", "interest_server.cli", "serve", "--host", "127.0.0.1",
         "--port", str(port), "--redis-url", redis_url],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=full_env)
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout_s
    lines: list[str] = []
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        match = re.search(r"listening on .*:(\d+)", line)
        if match:
            _drain(proc)
            return ServerProcess(proc, int(match.group(1)))
    proc.kill()
    proc.wait()
    raise RuntimeError("server process did not start:\n" + "".join(lines[-30:]))


def _drain(proc: subprocess.Popen) -> None:
    """Keep reading the child's output so a chatty server never blocks on a full pipe."""
    log: list[str] = []
    proc.log = log  # type: ignore[attr-defined]

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            log.append(line)
    threading.Thread(target=pump, name=f"server-{proc.pid}-log", daemon=True).start()


def server_log(server: ServerProcess) -> str:
    """What the server process printed after it started listening."""
    return "".join(getattr(server.proc, "log", []))


def kill_server(server: ServerProcess) -> None:
    """SIGKILL, like a crash, and reap it."""
    if server.proc.poll() is None:
        server.proc.kill()
    server.proc.wait(timeout=10)


def rss_kib(pid: int) -> int:
    """Resident set size of a process, from /proc/<pid>/status."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


@contextlib.contextmanager
def frozen(store: EmbeddedRedis) -> Iterator[None]:
    """SIGSTOP redis-server for the duration of the block; SIGCONT however it ends."""
    os.kill(store.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(store.pid, signal.SIGCONT)


def new_store(directory: Path, appendfsync: str = "always") -> EmbeddedRedis:
    """A started embedded Redis on a fixed port, so a restart is where clients expect it."""
    store = EmbeddedRedis(directory, port=free_port(), appendfsync=appendfsync)
    store.start()
    return store


@pytest.fixture
def store(tmp_path: Path) -> Iterator[EmbeddedRedis]:
    """A private Redis (appendfsync always, fixed port) for tests that stop, pause or freeze it."""
    s = new_store(tmp_path / "redis")
    try:
        yield s
    finally:
        if s.running:
            with contextlib.suppress(ProcessLookupError):
                os.kill(s.pid, signal.SIGCONT)
        s.stop()


# ---- workload -----------------------------------------------------------------------------

def make_events(rng: random.Random, count: int, users: Sequence[str],
                prefix: str, id_length: int = 0) -> list[pb.Event]:
    """`count` distinct events with explicit timestamps over the test catalog; event ids are
    padded to `id_length` characters (to make messages bigger)."""
    out = []
    for i in range(count):
        kind = rng.choice(KINDS)
        value = float(rng.randint(1, 5)) if kind == pb.EVENT_TYPE_RATING else None
        out.append(event(f"{prefix}-{i}".ljust(id_length, "~"), rng.choice(users),
                         rng.choice(ITEM_IDS), kind=kind,
                         ts=BASE_TS_MS + rng.randrange(SPAN_MS), value=value))
    return out


def batches(events: Sequence[pb.Event], size: int, prefix: str = "b") -> list[pb.EventBatch]:
    """EventBatch messages of up to `size` events, with batch ids."""
    return [pb.EventBatch(batch_id=f"{prefix}-{n}", events=events[i:i + size])
            for n, i in enumerate(range(0, len(events), size))]


def record(ev: pb.Event) -> EventRecord:
    """The server's view of a protobuf event (for fingerprints)."""
    return EventRecord(ev.event_id, ev.user_id, ev.item_id, EventType(ev.type),
                       ev.value if ev.HasField("value") else None, ev.timestamp_ms)


# ---- oracle -------------------------------------------------------------------------------

def item_vectors(client: redis.Redis, item_ids: Iterable[str] = ITEM_IDS) -> dict[str, np.ndarray]:
    """The catalog vectors as stored in Redis."""
    out = {}
    for item_id in item_ids:
        raw = client.hget(item_key(item_id), "vec")
        assert raw, f"item {item_id} has no stored vector"
        out[item_id] = np.frombuffer(raw, dtype="<f4").astype(np.float32)
    return out


def stored_record(client: redis.Redis, user_id: str) -> UserRecord | None:
    """The user's stored record, decoded; None when there is none."""
    raw = client.get(user_keys(user_id).record)
    return UserRecord.decode(raw) if raw else None


def stored_ids(client: redis.Redis, user_id: str,
               candidates: Iterable[str] = ()) -> dict[str, int]:
    """event_id -> fingerprint bits of every event Redis holds for the user. Rows outside the
    window keep only an id hash: they are named by the candidate id that hashes to it, or as
    '#<hash>' when none does (which no real id equals, so a comparison fails loudly)."""
    rec = stored_record(client, user_id)
    if rec is None:
        return {}
    names = {event_id_hash(e): e for e in [*candidates, *rec.event_ids]}
    return {names.get(h, f"#{h:x}"): fp
            for h, fp in zip(rec.events["id"].tolist(), rec.events["fp"].tolist(), strict=True)}


def check_user(client: redis.Redis, user_id: str, events: Sequence[pb.Event],
               vectors: dict[str, np.ndarray]) -> None:
    """Assert that Redis holds exactly the state that applying `events` once each gives."""
    ids = stored_ids(client, user_id, [ev.event_id for ev in events])
    assert ids == {ev.event_id: fingerprint_bits(record(ev).fingerprint()) for ev in events}, \
        f"{user_id}: stored event ids/fingerprints differ from the oracle's"
    model = DecayedAverageModel(HALF_LIFE_S)
    dim = len(next(iter(vectors.values())))
    items = [WeightedItem(vectors[ev.item_id], event_weight(EventType(ev.type),
                                                            record(ev).value), ev.timestamp_ms)
             for ev in sorted(events, key=lambda e: e.timestamp_ms)]
    acc, t_ref = model.fold(None, 0, items, dim)
    rec = stored_record(client, user_id)
    assert rec is not None, f"{user_id}: no stored record"
    assert rec.applied == len(events), f"{user_id}: event count"
    assert rec.t_ref == t_ref, f"{user_id}: reference time"
    scale = max(float(np.linalg.norm(acc)), 1.0)
    np.testing.assert_allclose(rec.vector, acc, rtol=1e-4, atol=1e-4 * scale,
                               err_msg=f"{user_id}: interest accumulator")
    assert rec.consumed() == {ev.item_id for ev in events}, f"{user_id}: consumed set"
    assert len(rec.event_ids) == min(len(events), Settings().window_size)
    assert set(rec.event_ids) <= set(ids), f"{user_id}: window holds an event that is not stored"
    assert len(rec.events) == len(events)


def check_all(client: redis.Redis, events: Sequence[pb.Event], users: Sequence[str]) -> int:
    """check_user for every user; returns the number of events checked."""
    vectors = item_vectors(client)
    by_user: dict[str, list[pb.Event]] = {u: [] for u in users}
    for ev in events:
        by_user[ev.user_id].append(ev)
    for user_id, evs in by_user.items():
        check_user(client, user_id, evs, vectors)
    return len(events)


def connect(url: str) -> redis.Redis:
    """A test-side client with a bounded timeout."""
    return redis.Redis.from_url(url, socket_timeout=10, socket_connect_timeout=10)
