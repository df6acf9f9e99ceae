"""The event write path without gRPC: UserStore.apply_events against a private Redis, and the
per-user record handling alone (decode, dedupe look-up, append, encode).

Ad hoc checks behind figures in bench/README.md (Ingestion, Record format 2); no peer in the
run, so read them as an upper bound for the server and as before/after on one machine state.
"""

from __future__ import annotations

import argparse
import importlib.util
import random
import statistics
import sys
import time
import timeit
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
from _common import machine, print_table, private_redis, write_result
from interest_server.events import EventRecord, EventType
from interest_server.model.interest_model import DecayedAverageModel
from interest_server.state import user_record, user_store
from interest_server.state.user_store import UserStateCache, UserStore

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


def record_step_us(module: ModuleType = user_record) -> float:
    """Microseconds to decode a full-window record, look up the new event's id, add it, encode
    (with `module` as user_record.py)."""
    UserRecord, NewEvent = module.UserRecord, module.NewEvent  # noqa: N806
    record = UserRecord(version=1, epoch=b"\x01" * 8, model="decayed-average",
                        vector=np.ones(384, np.float32))
    record.add_events([NewEvent(f"{n:032x}", n, n, f"item{n}", 1, None, NOW_MS)
                       for n in range(50)], NOW_MS, 50, NOW_MS - 86_400_000)
    raw = record.encode()
    new = [NewEvent("f" * 32, 7, 5, "item3", 2, None, NOW_MS)]

    def step() -> None:
        again = UserRecord.decode(raw)
        again.fingerprints_of([7])  # the dedupe look-up UserStore does
        again.add_events(new, NOW_MS, 50, NOW_MS - 86_400_000)
        again.encode()

    return timeit.timeit(step, number=2000) / 2000 * 1e6


def use_record_module(module: ModuleType) -> None:
    """Make UserStore read and write records with `module` in place of user_record.py."""
    for name in ("NewEvent", "UserRecord", "event_id_hash", "fingerprint_bits", "from_format1",
                 "new_epoch"):
        setattr(user_store, name, getattr(module, name))


def compare(path: Path, rounds: int, users: int, batches: int) -> None:
    """Old (the user_record.py at `path`) against this tree's, alternating in one process;
    prints every round and the medians, writes no result file."""
    spec = importlib.util.spec_from_file_location("user_record_compared", path)
    assert spec is not None and spec.loader is not None
    other = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = other  # dataclasses look their module up
    spec.loader.exec_module(other)
    if not hasattr(other.UserRecord, "fingerprints_of"):
        raise SystemExit(f"{path} predates UserRecord.fingerprints_of, which UserStore now "
                         "calls; compare whole trees instead (ingest.py from a git worktree)")
    impls = {"old": other, "new": user_record}
    names = ("record_step_us", "events_per_s_cache_off", "events_per_s_cache_on")
    got: dict[tuple[str, str], list[float]] = {(k, n): [] for k in impls for n in names}
    try:
        for r in range(rounds):
            for key, module in impls.items():
                use_record_module(module)
                got[key, names[0]].append(record_step_us(module))
                got[key, names[1]].append(store_rate(0, users, batches))
                got[key, names[2]].append(store_rate(20_000, users, batches))
                print(f"round {r + 1} {key}: " + "  ".join(
                    f"{n} {got[key, n][-1]:.1f}" for n in names), flush=True)
    finally:
        use_record_module(user_record)
    rows = [[n, *(round(statistics.median(got[k, n]), 1) for k in impls),
             f"{statistics.median(got['new', n]) / statistics.median(got['old', n]) - 1:+.1%}"]
            for n in names]
    print_table(f"medians of {rounds} alternating rounds (old: {path})",
                ["", *impls, "new/old"], rows)
    for k in impls:
        for n in names:
            print(k, n, [round(v, 1) for v in got[k, n]])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--users", type=int, default=2000)
    parser.add_argument("--batches", type=int, default=200)
    parser.add_argument("--compare-module", type=Path, default=None,
                        help="another user_record.py to time against this tree's, alternating "
                             "(prints only)")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    if args.compare_module is not None:
        compare(args.compare_module, args.rounds, args.users, args.batches)
        return
    started = machine()
    out: dict[str, Any] = {"record_step_us": record_step_us(),
                           "events_per_s_cache_off": store_rate(0, args.users, args.batches),
                           "events_per_s_cache_on": store_rate(20_000, args.users, args.batches)}
    print_table("write path in-process (no gRPC)", list(out), [[round(v, 1) for v in out.values()]])
    write_result("store_inprocess", out, started)


if __name__ == "__main__":
    main()
