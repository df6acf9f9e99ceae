"""Soak: a fixed event and Recommend rate for a bounded time, RSS and p99 every 10 s."""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import grpc
from interest.v1 import interest_pb2 as pb
from interest.v1 import interest_pb2_grpc

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from integration.conftest import catalog_items, start_server_process  # noqa: E402
from interest_server.ops.redis_launcher import EmbeddedRedis  # noqa: E402


def rss_mib(pid: int) -> float:
    """Resident set size of a process, from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def p99(values: list[float]) -> float:
    """99th percentile (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))] if ordered else float("nan")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=600)
    parser.add_argument("--events-per-s", type=float, default=2000)
    parser.add_argument("--recommends-per-s", type=float, default=50)
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--out", default=str(ROOT / "bench/results/soak.json"))
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        store = EmbeddedRedis(Path(tmp) / "redis")
        store.start()
        server = start_server_process(store.url)
        stop = threading.Event()
        errors: list[str] = []
        ingest_ms: list[float] = []
        recommend_ms: list[float] = []
        lock = threading.Lock()
        try:
            channel = grpc.insecure_channel(server.target)
            stub = interest_pb2_grpc.InterestServiceStub(channel)
            items = catalog_items()
            stub.UpsertItems(iter([pb.UpsertItemsRequest(items=items)]), timeout=60)
            ids = [i.item_id for i in items]

            def ingest() -> None:
                batch, n = 100, 0
                interval = batch / args.events_per_s
                next_at = time.monotonic()
                while not stop.is_set():
                    events = [pb.Event(event_id=f"s{n + j}", user_id=f"u{(n + j) % args.users}",
                                       item_id=ids[(n + j) % len(ids)], type=pb.EVENT_TYPE_VIEW,
                                       timestamp_ms=1_700_000_000_000 + n + j)
                              for j in range(batch)]
                    n += batch
                    t0 = time.perf_counter()
                    try:
                        stub.IngestEvents(pb.EventBatch(events=events), timeout=10)
                        with lock:
                            ingest_ms.append((time.perf_counter() - t0) * 1000)
                    except grpc.RpcError as exc:
                        errors.append(f"ingest {exc.code().name}")
                    next_at += interval
                    stop.wait(max(0.0, next_at - time.monotonic()))

            def recommend() -> None:
                n = 0
                interval = 1 / args.recommends_per_s
                next_at = time.monotonic()
                while not stop.is_set():
                    t0 = time.perf_counter()
                    try:
                        stub.Recommend(pb.RecommendRequest(user_id=f"u{n % args.users}", k=10),
                                       timeout=10)
                        with lock:
                            recommend_ms.append((time.perf_counter() - t0) * 1000)
                    except grpc.RpcError as exc:
                        errors.append(f"recommend {exc.code().name}")
                    n += 7
                    next_at += interval
                    stop.wait(max(0.0, next_at - time.monotonic()))

            workers = [threading.Thread(target=ingest), threading.Thread(target=recommend)]
            for w in workers:
                w.start()
            samples = []
            started = time.monotonic()
            print(f"{'t (s)':>6} {'RSS MiB':>8} {'ingest p99':>10} {'rec p99':>8} "
                  f"{'events':>8} {'errors':>6}")
            while time.monotonic() - started < args.seconds:
                time.sleep(10)
                with lock:
                    window_ingest, window_rec = ingest_ms[:], recommend_ms[:]
                    ingest_ms.clear()
                    recommend_ms.clear()
                sample = {"t_s": round(time.monotonic() - started, 1),
                          "server_rss_mib": round(rss_mib(server.proc.pid), 1),
                          "ingest_p99_ms": round(p99(window_ingest), 2),
                          "recommend_p99_ms": round(p99(window_rec), 2),
                          "events": len(window_ingest) * 100, "recommends": len(window_rec),
                          "errors": len(errors)}
                samples.append(sample)
                print(f"{sample['t_s']:>6} {sample['server_rss_mib']:>8} "
                      f"{sample['ingest_p99_ms']:>10} {sample['recommend_p99_ms']:>8} "
                      f"{sample['events']:>8} {sample['errors']:>6}")
            stop.set()
            for w in workers:
                w.join()
        finally:
            server.stop()
            store.stop()
    half = len(samples) // 2
    first = statistics.median(s["server_rss_mib"] for s in samples[:max(half, 1)])
    second = statistics.median(s["server_rss_mib"] for s in samples[half:])
    result = {"command": "python bench/soak.py " + " ".join(argv or sys.argv[1:]),
              "date": time.strftime("%Y-%m-%d"), "load_avg": os.getloadavg(),
              "settings": vars(args), "samples": samples, "errors": errors[:20],
              "error_count": len(errors), "rss_median_first_half_mib": first,
              "rss_median_second_half_mib": second}
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"RSS median first half {first:.1f} MiB, second half {second:.1f} MiB; "
          f"{len(errors)} errors")
    return 0 if not errors else 1


if __name__ == "__main__":
    sys.exit(main())
