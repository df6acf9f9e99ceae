"""Ingestion: StreamEvents events/s and ack latency vs a bare gRPC echo server and raw Redis."""

from __future__ import annotations

import argparse
import collections
import contextlib
import itertools
import random
import threading
import time
from typing import Any

import grpc
import profile_pyspy
import redis_raw
from _common import (
    ServerProcess,
    default_model_id,
    machine,
    print_table,
    private_redis,
    stats_ms,
    store_synthetic_catalog,
    unit_vectors,
    write_result,
)
from interest.v1 import interest_pb2 as pb

METHOD = "/interest.v1.InterestService/StreamEvents"
UNARY_METHOD = "/interest.v1.InterestService/IngestEvents"
TYPES = (pb.EVENT_TYPE_VIEW, pb.EVENT_TYPE_CLICK, pb.EVENT_TYPE_LIKE)
RATE_CAP = {1: 8_000, 10: 40_000, 100: 80_000, 1000: 80_000}
"""Events/s a pool of distinct events is sized for (duration x cap): above it the real server
would start seeing duplicates, so its run stops early instead (flagged `pool_exhausted`)."""
ECHO_POOL = 100_000
"""Events pre-built for the echo server, which may cycle them (it does not care about ids)."""


def build_batches(size: int, events: int, users: int, items: list[str], tag: str,
                  seed: int, user_prefix: str = "u") -> list[bytes]:
    """Serialised EventBatch messages of distinct events (built before the clock starts, so
    client-side message building is not part of either server's figure)."""
    rng = random.Random(seed)
    out = []
    for b in range(max(1, events // size)):
        batch = pb.EventBatch(batch_id=f"{tag}-{b}")
        for j in range(size):
            batch.events.add(event_id=f"{tag}{b}.{j}",
                             user_id=f"{user_prefix}{rng.randrange(users)}",
                             item_id=items[rng.randrange(len(items))],
                             type=TYPES[rng.randrange(len(TYPES))])
        out.append(batch.SerializeToString())
    return out


def _one_stream(target: str, batches: list[bytes], warm: float, deadline: float,
                window: int, cycle: bool, out: dict[str, Any]) -> None:
    """One StreamEvents call with up to `window` unacknowledged messages."""
    # Each stream its own TCP connection, as separate backends would have (gRPC core otherwise
    # shares one connection among channels with equal arguments, which would also pin every
    # stream to one process of `serve --processes N`).
    channel = grpc.insecure_channel(target, options=[
        ("grpc.max_send_message_length", 8 << 20), ("grpc.max_receive_message_length", 8 << 20),
        ("grpc.use_local_subchannel_pool", 1)])
    call = channel.stream_stream(METHOD, request_serializer=None,
                                 response_deserializer=pb.EventBatchAck.FromString)
    slots, sent, stop = threading.Semaphore(window), collections.deque[float](), threading.Event()

    def requests() -> Any:
        i = 0
        while True:
            while not slots.acquire(timeout=0.05):
                if stop.is_set():
                    return
            if stop.is_set() or (i >= len(batches) and not cycle):
                out["pool_exhausted"] = i >= len(batches)
                return
            sent.append(time.perf_counter())
            yield batches[i % len(batches)]
            i += 1

    lat, counts, first, last = [], collections.Counter[str](), 0.0, 0.0
    for ack in call(requests()):
        now = time.perf_counter()
        t_sent = sent.popleft()
        slots.release()
        if now >= warm:
            if not first:
                first = now
            else:  # the first measured ack opens the interval; count what follows it
                counts.update(events=len(ack.acks), msgs=1, applied=ack.applied,
                              duplicates=ack.duplicates, rejected=ack.rejected)
                lat.append(now - t_sent)
            last = now
        if now >= deadline:
            stop.set()
    channel.close()
    out.update(lat=lat, counts=counts, first=first, last=last)


def _unary_caller(channel: grpc.Channel, batches: list[bytes], warm: float, deadline: float,
                  cycle: bool, out: dict[str, Any]) -> None:
    """Blocking IngestEvents calls, one after another, until the deadline."""
    call = channel.unary_unary(UNARY_METHOD, request_serializer=None,
                               response_deserializer=pb.EventBatchAck.FromString)
    lat, counts, first, last = [], collections.Counter[str](), 0.0, 0.0
    for i in itertools.count():
        if i >= len(batches) and not cycle:
            out["pool_exhausted"] = True
            break
        t_sent = time.perf_counter()
        ack = call(batches[i % len(batches)], timeout=60)
        now = time.perf_counter()
        if now >= warm:
            if not first:
                first = now
            else:
                counts.update(events=len(ack.acks), msgs=1, applied=ack.applied,
                              duplicates=ack.duplicates, rejected=ack.rejected)
                lat.append(now - t_sent)
            last = now
        if now >= deadline:
            break
    out.update(lat=lat, counts=counts, first=first, last=last)


def drive(target: str, pools: list[list[bytes]], duration_s: float, window: int,
          cycle: bool, unary: bool = False) -> dict[str, Any]:
    """Run one StreamEvents call per pool concurrently for duration_s; aggregate. unary: one
    thread of blocking IngestEvents calls per pool instead, all over one shared channel (a
    backend's request threads)."""
    start = time.perf_counter()
    warm = start + min(1.0, duration_s / 5)
    outs: list[dict[str, Any]] = [{} for _ in pools]
    shared = grpc.insecure_channel(target) if unary else None
    threads = [threading.Thread(target=_unary_caller, args=(shared, pool, warm,
                                                            start + duration_s, cycle, o))
               if shared is not None else
               threading.Thread(target=_one_stream, args=(target, pool, warm,
                                                          start + duration_s, window, cycle, o))
               for pool, o in zip(pools, outs, strict=True)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if shared is not None:
        shared.close()
    counts = sum((o["counts"] for o in outs), collections.Counter[str]())
    span = max(o["last"] for o in outs) - min(o["first"] for o in outs)
    return {"events_per_s": counts["events"] / span, "msgs_per_s": counts["msgs"] / span,
            "ack_latency": stats_ms([x for o in outs for x in o["lat"]]), "seconds": span,
            "pool_exhausted": any(o.get("pool_exhausted") for o in outs), **counts}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="1,10,100,1000", help="events per message")
    parser.add_argument("--duration", type=float, default=8.0, help="seconds per run")
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--items", type=int, default=1_000)
    parser.add_argument("--window", type=int, default=8, help="unacked messages per stream")
    parser.add_argument("--streams", type=int, default=1, help="concurrent StreamEvents calls")
    parser.add_argument("--unary", action="store_true",
                        help="--streams threads of blocking IngestEvents calls over one channel "
                        "instead of StreamEvents calls")
    parser.add_argument("--compare-coalescing", action="store_true",
                        help="also drive a real server with --coalesce-events 1 (no stream "
                        "coalescing, no group commit), before the default one")
    parser.add_argument("--redis-n", type=int, default=100_000, help="redis-benchmark requests")
    parser.add_argument("--profile", type=float, default=0.0,
                        help="py-spy the real server for this many seconds at --profile-size")
    parser.add_argument("--profile-size", type=int, default=100,
                        help="events per message of the profiled run")
    parser.add_argument("--tag", default="", help="results/ingest_<tag>.json instead")
    parser.add_argument("--compare-processes", type=int, default=0, metavar="N",
                        help="also drive `interest-server serve --processes N` (N processes "
                        "on one port and the same Redis; the kernel spreads the streams' "
                        "connections over them), right after the single process (give "
                        "--streams well above N)")
    parser.add_argument("--compare-cache", action="store_true",
                        help="run the real server with --user-cache-size 20000 and also drive "
                        "one with the default 0 (read before every write), one after the other")
    parser.add_argument("--compare-event-log", action="store_true",
                        help="also drive a real server with --event-log-maxlen 0 (no event "
                        "log), right after the default one (which logs every acked event)")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    started = machine()
    results: dict[str, Any] = {"users": args.users, "window": args.window,
                               "streams": args.streams, "unary": args.unary,
                               "compare_processes": args.compare_processes, "runs": {}}
    with private_redis() as (redis_server, client):
        items = store_synthetic_catalog(client, unit_vectors(args.items), default_model_id())
        with contextlib.ExitStack() as stack:
            echo = stack.enter_context(ServerProcess("echo"))
            real = stack.enter_context(ServerProcess(
                "real", redis_server.url,
                *(("--user-cache-size", "20000") if args.compare_cache else ())))
            servers = [("echo", echo), ("real", real)]
            if args.compare_processes:
                servers.append(("procs", stack.enter_context(ServerProcess(
                    "real", redis_server.url, "--processes", str(args.compare_processes)))))
            if args.compare_cache:  # run before the default one: first in line pays warm-up
                servers.insert(1, ("nocache", stack.enter_context(ServerProcess(
                    "real", redis_server.url, "--user-cache-size", "0"))))
            if args.compare_event_log:  # after the default one: it pays the warm-up
                servers.append(("nolog", stack.enter_context(ServerProcess(
                    "real", redis_server.url, "--event-log-maxlen", "0"))))
            if args.compare_coalescing:
                servers.insert(1, ("uncoalesced", stack.enter_context(ServerProcess(
                    "real", redis_server.url, "--coalesce-events", "1"))))
            for size in sizes:
                cap = int(args.duration * RATE_CAP.get(size, 80_000))
                per_stream = max(size, cap // args.streams)
                row: dict[str, Any] = {}
                for kind, server in servers:
                    n = min(per_stream, ECHO_POOL) if kind == "echo" else per_stream
                    # Each real server writes its own users: one server's writes would make the
                    # other's cached states stale, which is not what a server sees alone.
                    pools = [build_batches(size, n, args.users, items, f"{kind}{size}s{s}", s,
                                           user_prefix=kind[0])
                             for s in range(args.streams)]
                    prof = (profile_pyspy.start(server.pid, args.profile, f"ingest_b{size}")
                            if kind == "real" and size == args.profile_size and args.profile
                            else None)
                    row[kind] = drive(server.target, pools, args.duration, args.window,
                                      cycle=kind == "echo", unary=args.unary)
                    if prof is not None:
                        row["profile"] = profile_pyspy.finish(prof)
                row["ratio_events"] = row["real"]["events_per_s"] / row["echo"]["events_per_s"]
                if "nocache" in row:
                    row["ratio_cache"] = (row["real"]["events_per_s"]
                                          / row["nocache"]["events_per_s"])
                if "procs" in row:
                    row["ratio_processes"] = (row["procs"]["events_per_s"]
                                              / row["real"]["events_per_s"])
                if "nolog" in row:
                    row["ratio_event_log"] = (row["real"]["events_per_s"]
                                              / row["nolog"]["events_per_s"])
                if "uncoalesced" in row:
                    row["ratio_coalescing"] = (row["real"]["events_per_s"]
                                               / row["uncoalesced"]["events_per_s"])
                results["runs"][str(size)] = row
                print(f"  {size}/msg: echo {row['echo']['events_per_s']:,.0f} ev/s, real "
                      f"{row['real']['events_per_s']:,.0f} ev/s" + (
                          f", no cache {row['nocache']['events_per_s']:,.0f} ev/s"
                          if "nocache" in row else "") + (
                          f", uncoalesced {row['uncoalesced']['events_per_s']:,.0f} ev/s"
                          if "uncoalesced" in row else "") + (
                          f", no event log {row['nolog']['events_per_s']:,.0f} ev/s "
                          f"(log/no log {row['ratio_event_log']:.3f})"
                          if "nolog" in row else "") + (
                          f", {args.compare_processes} processes "
                          f"{row['procs']['events_per_s']:,.0f} ev/s"
                          f" ({row['procs']['msgs_per_s']:,.0f} msg/s)"
                          if "procs" in row else ""), flush=True)
        results["raw_redis"] = redis_raw.measure(client, redis_server.port, args.redis_n,
                                                 max(5_000, args.redis_n // 5))
    report(results)
    write_result("ingest" + (f"_{args.tag}" if args.tag else ""), results, started)


def report(results: dict[str, Any]) -> None:
    """Print the table against the issue's targets."""
    rows = []
    for size, r in results["runs"].items():
        e, s = r["echo"], r["real"]
        target = {"1": "msgs >= 0.8 x echo", "100": ">= 50k/s and >= 0.3 x echo"}.get(size, "")
        rows.append([int(size), e["events_per_s"], e["msgs_per_s"], e["ack_latency"]["p50_ms"],
                     e["ack_latency"]["p99_ms"], s["events_per_s"], s["msgs_per_s"],
                     s["ack_latency"]["p50_ms"], s["ack_latency"]["p99_ms"],
                     round(r["ratio_events"], 3), s.get("applied", 0), s.get("rejected", 0),
                     target])
    title = (f"IngestEvents, {results['streams']} caller thread(s)" if results.get("unary")
             else f"StreamEvents, window {results['window']}, {results['streams']} stream(s)")
    print_table(f"{title}, {results['users']:,} users",
                ["ev/msg", "echo_ev/s", "echo_msg/s", "echo_p50", "echo_p99", "real_ev/s",
                 "real_msg/s", "real_p50", "real_p99", "real/echo", "applied", "rejected",
                 "target"], rows)
    redis_raw.table(results["raw_redis"])


if __name__ == "__main__":
    main()
