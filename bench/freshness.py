"""Freshness: time from sending an event (IngestEvents ack) to Recommend reflecting it."""

from __future__ import annotations

import argparse
import random
import time
import uuid
from typing import Any

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
from interest_client import InterestClient

POLL_LIMIT_S = 2.0


def reflected(resp: pb.RecommendResponse, version: int, item_id: str) -> bool:
    """The list was computed from the acked version and no longer offers the consumed item."""
    return resp.user_version >= version and all(i.item_id != item_id for i in resp.items)


def trial(writer: InterestClient, readers: list[InterestClient], user: str,
          item: str) -> dict[str, Any]:
    """Send one event, then Recommend on each reader until it reflects the event."""
    t0 = time.perf_counter()
    ack = writer.ingest([{"event_id": uuid.uuid4().hex, "user_id": user, "item_id": item,
                          "type": "like"}]).acks[0]
    t_ack = time.perf_counter()
    assert ack.status == pb.ACK_STATUS_APPLIED, ack
    out: dict[str, Any] = {"ingest_s": t_ack - t0, "per_reader": []}
    for reader in readers:
        first_s, tries = 0.0, 0
        while True:
            t1 = time.perf_counter()
            resp = reader.recommend(user, k=10)
            now = time.perf_counter()
            first_s = first_s or now - t1
            tries += 1
            if reflected(resp, ack.user_version, item) or now - t_ack > POLL_LIMIT_S:
                break
        out["per_reader"].append({"first_recommend_s": first_s, "tries": tries,
                                  "send_to_reflected_s": now - t0,
                                  "ack_to_reflected_s": now - t_ack,
                                  "ok": reflected(resp, ack.user_version, item)})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trials", type=int, default=300)
    parser.add_argument("--items", type=int, default=10_000, help="synthetic catalog size")
    parser.add_argument("--users", type=int, default=100)
    parser.add_argument("--replica", action=argparse.BooleanOptionalAction, default=True,
                        help="also read from a second server process sharing the Redis")
    args = parser.parse_args()
    started = machine()
    rng = random.Random(0)
    with private_redis() as (redis_server, client):
        items = store_synthetic_catalog(client, unit_vectors(args.items), default_model_id())
        servers = [ServerProcess("real", redis_server.url)]
        if args.replica:
            servers.append(ServerProcess("real", redis_server.url))
        names = ["same server", "other replica"][: len(servers)]
        clients = [s.client() for s in servers]
        trials, raw = [], []
        try:
            for i in range(args.trials + 10):
                t = trial(clients[0], clients, f"f{i % args.users}", rng.choice(items))
                # Peer in the same loop: Redis' own write-then-read round trip from Python.
                t0 = time.perf_counter()
                client.set(f"fresh:{i}", i)
                assert int(client.get(f"fresh:{i}") or -1) == i
                if i >= 10:  # the first ten warm connections and caches
                    trials.append(t)
                    raw.append(time.perf_counter() - t0)
        finally:
            for c in clients:
                c.close()
            for s in servers:
                s.stop()
    results: dict[str, Any] = {
        "trials": len(trials), "catalog_items": args.items,
        "ingest_ack": stats_ms([t["ingest_s"] for t in trials]),
        "raw_redis_set_get": stats_ms(raw),
        "push_updates": "not measured: interest.v1 has no WatchRecommendations RPC",
        "readers": {}}
    for n, name in enumerate(names):
        per = [t["per_reader"][n] for t in trials]
        results["readers"][name] = {
            "reflected_on_first_recommend": sum(p["tries"] == 1 and p["ok"] for p in per),
            "never_reflected": sum(not p["ok"] for p in per),
            "first_recommend": stats_ms([p["first_recommend_s"] for p in per]),
            "ack_to_reflected": stats_ms([p["ack_to_reflected_s"] for p in per]),
            "send_to_reflected": stats_ms([p["send_to_reflected_s"] for p in per])}
    rows = [[name, f"{r['reflected_on_first_recommend']}/{len(trials)}",
             results["ingest_ack"]["p50_ms"], results["ingest_ack"]["p99_ms"],
             r["send_to_reflected"]["p50_ms"], r["send_to_reflected"]["p99_ms"],
             results["raw_redis_set_get"]["p50_ms"], results["raw_redis_set_get"]["p99_ms"]]
            for name, r in results["readers"].items()]
    print_table(f"freshness over {len(trials)} events, catalog {args.items:,} items "
                "(ms; peer: redis-py SET+GET in the same loop)",
                ["reader", "first_try", "ack_p50", "ack_p99", "send->reflected_p50",
                 "send->reflected_p99", "redis_p50", "redis_p99"], rows)
    write_result("freshness", results, started)


if __name__ == "__main__":
    main()
