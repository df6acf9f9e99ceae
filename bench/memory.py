"""Memory: Redis bytes per user at the default window, and server RSS at a large catalog."""

from __future__ import annotations

import argparse
import statistics
import time
import uuid
from collections.abc import Iterator
from typing import Any

import redis
from _common import (
    DIM,
    ServerProcess,
    default_model_id,
    machine,
    print_table,
    private_redis,
    store_synthetic_catalog,
    unit_vectors,
    write_result,
)
from interest_server.config import Settings
from interest_server.state.keys import user_keys

KEY_NAMES = ("record", "concepts", "state", "window", "seen", "event_ids", "event_times")
"""In UserKeys.all() order: the format-2 record, concepts, then the format-1 keys (0 here)."""
VECTOR_BYTES = DIM * 4
TARGET_BYTES = 2048


def events(users: int, per_user: int, items: list[str]) -> Iterator[dict[str, Any]]:
    """per_user events for each user, users interleaved; ids as InterestClient assigns them."""
    for n in range(per_user):
        for u in range(users):
            yield {"event_id": uuid.uuid4().hex, "user_id": f"m{u}",
                   "item_id": items[(u * 31 + n * 7) % len(items)], "type": "click"}


def per_user_bytes(client: redis.Redis, users: int, sample: int) -> dict[str, Any]:
    """MEMORY USAGE (exact, SAMPLES 0) of every key of `sample` users, by key."""
    step = max(1, users // sample)
    chosen = [f"m{u}" for u in range(0, users, step)][:sample]
    pipe = client.pipeline(transaction=False)
    for user in chosen:
        for key in user_keys(user).all():
            pipe.memory_usage(key, samples=0)
    replies = pipe.execute()
    per_key = {name: [int(r or 0) for r in replies[i::len(KEY_NAMES)]]
               for i, name in enumerate(KEY_NAMES)}
    totals = [sum(per_key[k][j] for k in KEY_NAMES) for j in range(len(chosen))]
    return {"users_sampled": len(chosen), "mean_bytes": statistics.mean(totals),
            "max_bytes": max(totals),
            "by_key_mean_bytes": {k: statistics.mean(v) for k, v in per_key.items()}}


def users_phase(users: int, per_user: int, sample: int) -> dict[str, Any]:
    """Create users through StreamEvents on a 1,000-item catalog; measure what they cost."""
    with private_redis() as (redis_server, client):
        items = store_synthetic_catalog(client, unit_vectors(1000), default_model_id())
        with ServerProcess("real", redis_server.url) as server, server.client() as c:
            before = int(client.info("memory")["used_memory"])
            t0 = time.perf_counter()
            acks = sum(1 for a in c.stream_events(events(users, per_user, items), batch_size=500)
                       if a.status == 1)
            seconds = time.perf_counter() - t0
            after = int(client.info("memory")["used_memory"])
            out = per_user_bytes(client, users, sample)
            out.update(users=users, events_per_user=per_user, applied=acks,
                       ingest_s=seconds, used_memory_delta_per_user=(after - before) / users,
                       small_catalog_server_rss_mb=server.rss_bytes() / 2**20)
    return out


def catalog_phase(items: int) -> dict[str, Any]:
    """Server RSS and Redis bytes with `items` synthetic items loaded."""
    with private_redis(persist=False) as (redis_server, client):
        before = int(client.info("memory")["used_memory"])
        store_synthetic_catalog(client, unit_vectors(items, seed=7), default_model_id())
        redis_bytes = int(client.info("memory")["used_memory"]) - before
        t0 = time.perf_counter()
        with ServerProcess("real", redis_server.url) as server:
            load_s = time.perf_counter() - t0
            rss = server.rss_bytes()
    return {"items": items, "server_rss_mb": rss / 2**20, "server_start_and_load_s": load_s,
            "matrix_mb": items * VECTOR_BYTES / 2**20, "redis_bytes_per_item": redis_bytes / items}


def print_users(args: argparse.Namespace, users: dict[str, Any]) -> None:
    """The per-user table."""
    by_key = users["by_key_mean_bytes"]
    print_table(f"Redis bytes per user: {args.users:,} users x {args.events_per_user} events "
                f"(window {Settings.window_size}, {DIM}-dim vectors)",
                ["mean", "max", "INFO_delta", *KEY_NAMES, "vector_floor", "target",
                 "x_target"],
                [[round(users["mean_bytes"]), users["max_bytes"],
                  round(users["used_memory_delta_per_user"]), *(round(by_key[k]) for k in
                                                                KEY_NAMES),
                  VECTOR_BYTES, TARGET_BYTES, round(users["mean_bytes"] / TARGET_BYTES, 2)]])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--events-per-user", type=int, default=Settings.window_size)
    parser.add_argument("--sample", type=int, default=1000, help="users measured key by key")
    parser.add_argument("--items", type=int, default=100_000, help="large catalog size")
    parser.add_argument("--full", action="store_true", help="100k users and 1M items")
    parser.add_argument("--users-only", action="store_true",
                        help="skip the large-catalog RSS phase (writes memory_users.json)")
    args = parser.parse_args()
    if args.full:
        args.users, args.items = 100_000, 1_000_000
    started = machine()
    users = users_phase(args.users, args.events_per_user, args.sample)
    print_users(args, users)
    if args.users_only:
        write_result("memory_users", {"target_bytes_per_user": TARGET_BYTES, "users": users},
                     started)
        return
    catalog = catalog_phase(args.items)
    catalog["small_catalog_server_rss_mb"] = users["small_catalog_server_rss_mb"]
    catalog["rss_growth_per_item_bytes"] = (
        (catalog["server_rss_mb"] - users["small_catalog_server_rss_mb"]) * 2**20
        / (args.items - 1000))
    print_table("server RSS (MB)",
                ["items", "rss", "rss_1k_items", "matrix", "growth_B/item", "floor_B/item",
                 "redis_B/item"],
                [[catalog["items"], round(catalog["server_rss_mb"]),
                  round(catalog["small_catalog_server_rss_mb"]), round(catalog["matrix_mb"]),
                  round(catalog["rss_growth_per_item_bytes"]), VECTOR_BYTES,
                  round(catalog["redis_bytes_per_item"])]])
    write_result("memory", {"target_bytes_per_user": TARGET_BYTES, "users": users,
                            "catalog": catalog}, started)


if __name__ == "__main__":
    main()
