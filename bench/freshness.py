"""Freshness: time from sending an event (IngestEvents ack) to Recommend reflecting it, and to a
WatchRecommendations stream pushing it (watcher on the same server and on another replica)."""

from __future__ import annotations

import argparse
import random
import threading
import time
import uuid
from typing import Any

import grpc
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
from interest.v1 import interest_pb2_grpc
from interest_client import InterestClient
from interest_server.config import Settings

POLL_LIMIT_S = 2.0
PUSH_TARGET_MS = 50.0
"""Issue 4: a pushed update arrives within 50 ms p99."""
WATCH_LIMIT = min(Settings.max_watch_streams, Settings().stream_slots)
"""Watch streams one default server process admits (serve.py starts it with the defaults)."""
INTERVAL_S = Settings.watch_min_interval_ms / 1000
"""The servers' least time between two pushes of one stream (serve.py: the default)."""


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


class Watch:
    """A WatchRecommendations stream read by a background thread; each push is timestamped
    (time.perf_counter, the clock the trials use) on arrival."""

    def __init__(self, channel: grpc.Channel, user_id: str, k: int = 10) -> None:
        stub = interest_pb2_grpc.InterestServiceStub(channel)
        self.call = stub.WatchRecommendations(
            pb.WatchRecommendationsRequest(user_id=user_id, k=k), timeout=3600)
        self.pushes: list[tuple[float, pb.RecommendResponse]] = []
        self.error: grpc.RpcError | None = None
        self._cond = threading.Condition()
        self._ended = False
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            for resp in self.call:
                now = time.perf_counter()
                with self._cond:
                    self.pushes.append((now, resp))
                    self._cond.notify_all()
        except grpc.RpcError as err:
            self.error = err
        finally:
            with self._cond:
                self._ended = True
                self._cond.notify_all()

    def wait_version(self, version: int, start: int,
                     timeout_s: float) -> tuple[float, pb.RecommendResponse] | None:
        """The first push from index `start` on computed from state version >= `version`."""
        deadline = time.perf_counter() + timeout_s
        with self._cond:
            while True:
                for t, resp in self.pushes[start:]:
                    if resp.user_version >= version:
                        return t, resp
                left = deadline - time.perf_counter()
                if left <= 0 or self._ended:
                    return None
                self._cond.wait(left)

    def cancel(self) -> None:
        self.call.cancel()
        self._thread.join(5)


def push_trials(writer: InterestClient, watches: dict[str, list[Watch]], n: int, warmup: int,
                items: list[str], rng: random.Random) -> list[dict[str, Any]]:
    """One `like` at a time into the writer (server A) for a watched user, then the time until
    each watcher of that user (on A, on replica B) receives the first list computed from the
    acked version. A user's next event waits until its last push is more than the servers'
    minimum interval (plus 20-50 ms) old, so no push is held back by the rate limit: this
    measures delivery, not coalescing (tests/integration/test_watch.py covers that)."""
    users = list(watches)
    last_push = dict.fromkeys(users, 0.0)
    out = []
    for i in range(n + warmup):
        user = users[i % len(users)]
        wait = last_push[user] + INTERVAL_S + 0.02 + rng.uniform(0, 0.03) - time.perf_counter()
        if wait > 0:
            time.sleep(wait)
        starts = [len(w.pushes) for w in watches[user]]
        item = rng.choice(items)
        t0 = time.perf_counter()
        ack = writer.ingest([{"event_id": uuid.uuid4().hex, "user_id": user, "item_id": item,
                              "type": "like"}]).acks[0]
        t_ack = time.perf_counter()
        assert ack.status == pb.ACK_STATUS_APPLIED, ack
        per = []
        for w, start in zip(watches[user], starts, strict=True):
            got = w.wait_version(ack.user_version, start, POLL_LIMIT_S)
            if got is None:
                per.append({"ok": False})
                continue
            t, resp = got
            last_push[user] = max(last_push[user], t)
            per.append({"ok": True, "send_to_push_s": t - t0, "ack_to_push_s": t - t_ack,
                        "exact_version": resp.user_version == ack.user_version,
                        "item_gone": all(x.item_id != item for x in resp.items)})
        if not all(p["ok"] for p in per):
            last_push[user] = time.perf_counter()
        if i >= warmup:
            out.append({"ingest_s": t_ack - t0, "per_watcher": per})
    return out


def push_summary(trials: list[dict[str, Any]], n: int) -> dict[str, Any]:
    """Figures for the watcher at position n of every trial."""
    per = [t["per_watcher"][n] for t in trials]
    ok = [p for p in per if p["ok"]]
    return {"pushed": len(ok), "never_pushed": len(per) - len(ok),
            "pushed_before_ack": sum(p["ack_to_push_s"] < 0 for p in ok),
            "pushed_exact_version": sum(p["exact_version"] for p in ok),
            "liked_item_gone": sum(p["item_gone"] for p in ok),
            "send_to_push": stats_ms([p["send_to_push_s"] for p in ok]),
            # A push can beat the ack back to the client (A publishes before it replies):
            # counted in pushed_before_ack, and as 0 here, as tests/integration/test_watch.py.
            "ack_to_push": stats_ms([max(0.0, p["ack_to_push_s"]) for p in ok])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trials", type=int, default=300)
    parser.add_argument("--items", type=int, default=10_000, help="synthetic catalog size")
    parser.add_argument("--users", type=int, default=100)
    parser.add_argument("--replica", action=argparse.BooleanOptionalAction, default=True,
                        help="also read from a second server process sharing the Redis")
    parser.add_argument("--push-trials", type=int, default=300,
                        help="events for the WatchRecommendations measurement (0: skip it)")
    parser.add_argument("--watch-users", type=int, default=4,
                        help=f"users watched, each on every server (at most {WATCH_LIMIT}: "
                             "the servers' max_watch_streams, within their stream slots)")
    parser.add_argument("--tag", default="", help="results/freshness_<tag>.json instead")
    args = parser.parse_args()
    if not 1 <= args.watch_users <= WATCH_LIMIT:
        parser.error(f"--watch-users must be 1..{WATCH_LIMIT} (one stream per user per server; "
                     f"max_watch_streams={Settings.max_watch_streams}, "
                     f"workers={Settings.workers})")
    started = machine()
    rng = random.Random(0)
    with private_redis() as (redis_server, client):
        items = store_synthetic_catalog(client, unit_vectors(args.items), default_model_id())
        servers = [ServerProcess("real", redis_server.url)]
        if args.replica:
            servers.append(ServerProcess("real", redis_server.url))
        names = ["same server", "other replica"][: len(servers)]
        clients = [s.client() for s in servers]
        channels = [grpc.insecure_channel(s.target) for s in servers]
        trials, raw, pushes = [], [], []
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
            if args.push_trials:
                # After the Recommend trials, so those run as before (no stream open).
                watches = {f"w{u}": [Watch(ch, f"w{u}") for ch in channels]
                           for u in range(args.watch_users)}
                try:
                    for ws in watches.values():
                        for w in ws:  # the list at once, subscribed
                            assert w.wait_version(0, 0, 30.0) is not None, w.error
                    pushes = push_trials(clients[0], watches, args.push_trials, 10, items, rng)
                finally:
                    for ws in watches.values():
                        for w in ws:
                            w.cancel()
        finally:
            for ch in channels:
                ch.close()
            for c in clients:
                c.close()
            for s in servers:
                s.stop()
    results: dict[str, Any] = {
        "trials": len(trials), "catalog_items": args.items,
        "ingest_ack": stats_ms([t["ingest_s"] for t in trials]),
        "raw_redis_set_get": stats_ms(raw),
        "readers": {}}
    if pushes:
        results["push_updates"] = {
            "trials": len(pushes), "watched_users": args.watch_users,
            "streams_per_server": args.watch_users, "min_interval_ms": INTERVAL_S * 1000,
            "method": "one like at a time into server A for a watched user; a user's next "
                      "event waits until its last push is > min interval + 20-50 ms old; "
                      "push = the first streamed list with user_version >= the acked version",
            "ingest_ack": stats_ms([t["ingest_s"] for t in pushes]),
            "target_p99_ms": PUSH_TARGET_MS, "watchers": {}}
        for n, name in enumerate(names):
            summary = push_summary(pushes, n)
            for leg in ("send_to_push", "ack_to_push"):
                summary[f"{leg}_p99_within_target"] = (
                    summary["never_pushed"] == 0
                    and summary[leg].get("p99_ms", float("inf")) <= PUSH_TARGET_MS)
            results["push_updates"]["watchers"][name] = summary
    else:
        results["push_updates"] = "not measured (--push-trials 0)"
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
    if pushes:
        up = results["push_updates"]
        print_table(f"WatchRecommendations push over {len(pushes)} events into A, "
                    f"{args.watch_users} watched users (ms; target p99 <= {PUSH_TARGET_MS:g})",
                    ["watcher", "pushed", "before_ack", "send->push_p50", "send->push_p99",
                     "ack->push_p50", "ack->push_p99", "max"],
                    [[name, f"{w['pushed']}/{len(pushes)}", w["pushed_before_ack"],
                      w["send_to_push"].get("p50_ms", "-"), w["send_to_push"].get("p99_ms", "-"),
                      w["ack_to_push"].get("p50_ms", "-"), w["ack_to_push"].get("p99_ms", "-"),
                      w["send_to_push"].get("max_ms", "-")]
                     for name, w in up["watchers"].items()])
    write_result("freshness" + (f"_{args.tag}" if args.tag else ""), results, started)


if __name__ == "__main__":
    main()
