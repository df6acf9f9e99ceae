"""Raw Redis limits for the event write path: redis-benchmark SET/EVALSHA and redis-py pipelines."""

from __future__ import annotations

import argparse
import random
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import interest_server.state
import redis
from _common import machine, print_table, private_redis, write_result
from interest_server.state.user_record import HEADER, MAGIC

LUA = Path(interest_server.state.__file__).parent / "lua" / "write_record.lua"
LUA_MANY = LUA.with_name("write_records.lua")
GUARD_START, GUARD_END = "local expected = ARGV[1]\n", "redis.call('SET', KEYS[1], ARGV[2])\n"
RECORD_BYTES = 5_400
"""About one user's record at a 50-event window (bench/README.md, Memory)."""
KEY_NAMES = ("rec", "concepts", "log", "state", "win", "seen", "ids", "idt")
EVENT_LOG_MAXLEN = 1000
"""The server's default event_log_maxlen: python_pipeline appends each event to the log."""


def unguarded_script() -> str:
    """The write script without its compare (redis-benchmark cannot track headers)."""
    source = LUA.read_text()
    return source[:source.index(GUARD_START)] + source[source.index(GUARD_END):]


def redis_benchmark(port: int, n: int, pipeline: int, command: list[str]) -> dict[str, Any]:
    """ops/s and latency of one redis-benchmark run (50 clients, 10k random keys)."""
    cmd = ["redis-benchmark", "-p", str(port), "-n", str(n), "-P", str(pipeline), "-c", "50",
           "-r", "10000", "-q", "--csv", *command]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=300).stdout
    # The test name is the whole command (quotes and all): read the 7 numbers from the right.
    last = out.strip().splitlines()[-1].rsplit(",", 7)[1:]
    rps, _avg, _min, p50, _p95, p99, _max = (float(x.strip('"')) for x in last)
    return {"ops_per_s": rps, "p50_ms": p50, "p99_ms": p99, "pipeline": pipeline, "n": n}


def evalsha_command(sha: str) -> list[str]:
    """The write script for one random user, as redis-benchmark arguments."""
    keys = [f"rb:{{__rand_int__}}:{k}" for k in KEY_NAMES]
    return ["EVALSHA", sha, str(len(keys)), *keys, "", "x" * RECORD_BYTES, "0", "", "0", ""]


def python_pipeline(client: redis.Redis, events: int, batch: int, users: int) -> dict[str, Any]:
    """The server's own Redis traffic (single Redis) for `events` events in batches, issued
    from Python with redis-py: per batch one MGET of the users' records, then one EVALSHA of
    write_records.lua writing each user's record of RECORD_BYTES, guarded by its header, with
    one popularity increment per event and one event-log entry per event."""
    # Assembled as UserStore does: write_record.lua as a function, then the per-user loop.
    script = client.register_script("local function write_one(KEYS, ARGV)\n" + LUA.read_text()
                                    + "\nend\n" + LUA_MANY.read_text())
    version: dict[int, int] = {}
    rng = random.Random(1)
    tag = f"py{batch}.{rng.getrandbits(32):08x}.{time.time_ns()}"  # fresh users every call
    epoch = b"\x01" * 8
    filler = b"x" * (RECORD_BYTES - HEADER.size)
    t0 = time.perf_counter()
    for b in range(0, events, batch):
        by_user: dict[int, list[int]] = {}
        for e in range(b, min(b + batch, events)):
            by_user.setdefault(rng.randrange(users), []).append(e)
        client.mget([f"{tag}:{{{u}}}:rec" for u in by_user])
        # write_records.lua's compact layout, as UserStore._run_writes builds it: the TTL once,
        # then per user its key count (format-1 keys only without a record), expected header,
        # record, format-1 mark, channel, its events' popularity pairs and its events for the
        # event log (item, type, value, ms, event id).
        keys: list[str] = []
        args: list[Any] = [0, EVENT_LOG_MAXLEN]
        for u, evs in by_user.items():
            v = version.get(u, 0)
            expected = HEADER.pack(MAGIC, v, epoch) if v else b""
            own = [f"{tag}:{{{u}}}:{k}" for k in KEY_NAMES]
            own = own if not v else own[:3]
            keys += own
            args += [len(own), expected, HEADER.pack(MAGIC, v + 1, epoch) + filler, "", "",
                     len(evs), *(x for e in evs for x in (1.0, f"s{e % 1000}")),
                     len(evs), *(x for e in evs
                                 for x in (f"s{e % 1000}", 1, "", 1_800_000_000_000 + e,
                                           f"{tag}.{e}"))]
            version[u] = v + 1
        replies = script(keys=[*keys, "py:pop"], args=args)
        assert all(int(r) == 1 for r in replies), "header guard refused"
    elapsed = time.perf_counter() - t0
    return {"events_per_s": events / elapsed, "events": events, "batch": batch, "users": users}


def server_usec(client: redis.Redis, fn: Any, *args: Any) -> dict[str, Any]:
    """fn(*args) plus the Redis CPU time per call of each command it caused (commandstats)."""
    client.config_resetstat()
    out = fn(*args)
    stats = client.info("commandstats")
    out["redis_usec_per_call"] = {k.removeprefix("cmdstat_"): v["usec_per_call"]
                                  for k, v in stats.items() if v["calls"] >= 100}
    return out


def measure(client: redis.Redis, port: int, n: int, py_events: int) -> dict[str, Any]:
    """All raw-Redis figures against one running Redis."""
    out: dict[str, Any] = {}
    if shutil.which("redis-benchmark"):
        sha = client.script_load(unguarded_script())
        out["redis_benchmark_set_p1"] = redis_benchmark(port, n, 1, ["-t", "set"])
        out["redis_benchmark_set_p100"] = redis_benchmark(port, n * 5, 100, ["-t", "set"])
        for p in (1, 100):
            out[f"redis_benchmark_evalsha_p{p}"] = server_usec(
                client, redis_benchmark, port, n, p, evalsha_command(sha))
    for batch in (1, 100):
        events = py_events if batch > 1 else py_events // 10
        out[f"python_pipeline_batch{batch}"] = server_usec(client, python_pipeline, client,
                                                           events, batch, 10_000)
    return out


def table(raw: dict[str, Any]) -> None:
    """Print the raw figures."""
    rows = [[k, round(v.get("ops_per_s", v.get("events_per_s", 0))), v.get("p50_ms", "-"),
             v.get("p99_ms", "-")] for k, v in raw.items()]
    print_table("raw Redis (ops/s; EVALSHA = the record write script, one user per call)",
                ["what", "ops_or_events_per_s", "p50_ms", "p99_ms"], rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=100_000, help="redis-benchmark requests")
    parser.add_argument("--py-events", type=int, default=20_000)
    args = parser.parse_args()
    started = machine()
    with private_redis() as (server, client):
        raw = measure(client, server.port, args.n, args.py_events)
    table(raw)
    write_result("redis_raw", {"results": raw}, started)


if __name__ == "__main__":
    main()
