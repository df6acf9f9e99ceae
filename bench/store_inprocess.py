"""The event write path without gRPC: UserStore.apply_events against a private Redis, and the
per-user record handling alone (decode, dedupe look-up, append, encode).

Ad hoc checks behind figures in bench/README.md (Ingestion, Record format 2); no peer in the
run, so read them as an upper bound for the server and as before/after on one machine state.
"""

from __future__ import annotations

import argparse
import random
import time
import timeit
from typing import Any

import numpy as np
from _common import machine, print_table, private_redis, write_result
from interest_server.events import EventRecord, EventType
from interest_server.interest_model import DecayedAverageModel
from interest_server.user_record import NewEvent, UserRecord
from interest_server.user_store import UserStateCache, UserStore

NOW_MS = 1_800_000_000_000


def store_rate(cache_size: int, users: int, batches: int) -> float:
    """Events/s of apply_events, 100-event batches over `users` users (after a warm-up)."""
    with private_redis() as (_server, client):
        store = UserStore(client, DecayedAverageModel(30 * 86400.0, dim=384), 50, 86400,
                          30 * 86400.0, cache=UserStateCache(cache_size))
        rng = random.Random(1)
        vectors = {f"i{n}": np.random.default_rng(n).standard_normal(384).astype(np.float32)
                   for n in range(1000)}

        def batch(b: int) -> list[EventRecord]:
            return [EventRecord(f"e{b}-{j}-{rng.getrandbits(64):016x}", f"u{rng.randrange(users)}",
                                f"i{rng.randrange(1000)}", EventType.CLICK, None, 0)
                    for j in range(100)]

        for b in range(100):
            store.apply_events(batch(b), vectors.__getitem__)
        todo = [batch(1000 + b) for b in range(batches)]
        t0 = time.perf_counter()
        for events in todo:
            store.apply_events(events, vectors.__getitem__)
        return len(todo) * 100 / (time.perf_counter() - t0)


def record_step_us() -> float:
    """Microseconds to decode a full-window record, look up its ids, add one event, encode."""
    record = UserRecord(version=1, epoch=b"\x01" * 8, model="decayed-average",
                        vector=np.ones(384, np.float32))
    record.add_events([NewEvent(f"{n:032x}", n, n, f"item{n}", 1, None, NOW_MS)
                       for n in range(50)], NOW_MS, 50, NOW_MS - 86_400_000)
    raw = record.encode()
    new = [NewEvent("f" * 32, 7, 5, "item3", 2, None, NOW_MS)]

    def step() -> None:
        again = UserRecord.decode(raw)
        again.stored_fingerprints()
        again.add_events(new, NOW_MS, 50, NOW_MS - 86_400_000)
        again.encode()

    return timeit.timeit(step, number=2000) / 2000 * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--users", type=int, default=2000)
    parser.add_argument("--batches", type=int, default=200)
    args = parser.parse_args()
    started = machine()
    out: dict[str, Any] = {"record_step_us": record_step_us(),
                           "events_per_s_cache_off": store_rate(0, args.users, args.batches),
                           "events_per_s_cache_on": store_rate(20_000, args.users, args.batches)}
    print_table("write path in-process (no gRPC)", list(out), [[round(v, 1) for v in out.values()]])
    write_result("store_inprocess", out, started)


if __name__ == "__main__":
    main()
