"""Recommend latency and throughput by catalog size, with and without a dislike, vs exact FAISS.

Also recall@10 of the server's list against an exact FAISS search of the same vectors, over
several users (each its own interest vector), with and without the dislike filter: 1.0 expected
below the server's `ann_min_items` (certified int8 scan), measured above it (PQ fast-scan).
A third variant states a liked concept ("I love comedy"): its score (behaviour + the boosted
concept) is checked against the same score computed here over every item with numpy, from the
concept vector and weight the server stored in Redis and the genre it grounded on.

`--compare-tree DIR` adds a second real server on the same Redis whose `interest_server` package
comes from DIR/server (e.g. a copy of the previous commit's tree), called in the same loop,
alternating which server goes first; its responses are compared byte for byte with the current
server's. Two servers alternate over two copies of the catalog's codes, so both run with colder
caches than one server alone: read the two side by side, not against a single-server run."""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import threading
import time
from pathlib import Path
from typing import Any

import faiss
import numpy as np
import profile_pyspy
import redis
from _common import (
    GENRES,
    ServerProcess,
    boosted_scores,
    default_model_id,
    machine,
    print_table,
    private_redis,
    stats_ms,
    store_synthetic_catalog,
    synthetic_genres,
    thread_env,
    unit_vectors,
    value_masks,
    write_result,
)
from interest_client import InterestClient
from interest_server.config import Settings
from threadpoolctl import threadpool_limits

K = 10
DISLIKE = "I hate romance"
LIKE = "I love comedy"


def make_users(client: InterestClient, items: list[str], rng: random.Random) -> list[str]:
    """'beh': 20 liked items; 'dis': the same likes plus a stated dislike (a concept filter);
    'pos': the same likes plus a stated liked concept (a boost)."""
    liked = rng.sample(items, 20)
    for user in ("beh", "dis", "pos"):
        client.ingest([{"user_id": user, "item_id": i, "type": "like"} for i in liked])
    stored = [*client.encode_interest("dis", DISLIKE).stored,
              *client.encode_interest("pos", LIKE).stored]
    return [f"{c.phrase} -> {[f'{x.name}={x.value}' for x in c.links]}" for c in stored]


def recall_users(client: InterestClient, items: list[str], rng: random.Random,
                 users: int) -> list[str]:
    """Users 'r0'.. with 20 random likes each; 'rd0'.. the same likes plus the dislike, 'rp0'..
    plus the liked concept."""
    names = []
    for u in range(users):
        liked = rng.sample(items, 20)
        for user in (f"r{u}", f"rd{u}", f"rp{u}"):
            client.ingest([{"user_id": user, "item_id": i, "type": "like"} for i in liked])
        client.encode_interest(f"rd{u}", DISLIKE)
        client.encode_interest(f"rp{u}", LIKE)
        names.append(str(u))
    return names


def recall_at_k(client: InterestClient, rclient: redis.Redis, index: faiss.Index,
                vectors: np.ndarray, items: list[str], users: list[str]) -> dict[str, Any]:
    """recall@K of the server's list vs exact FAISS (consumed items, and for 'rd' users the
    disliked genre, removed from the exact list the same way the server removes them); for
    'rp' users vs the exact boosted score (boosted_scores) with consumed items removed."""
    out: dict[str, list[float]] = {"plain": [], "dislike": [], "positive": []}
    carriers = value_masks(len(items), synthetic_genres)
    banned = {g for g in GENRES if g.lower() in DISLIKE.lower()}
    for u in users:
        state = client.get_user_state(f"r{u}", include_vector=True)
        query = np.asarray(state.interest_vector, dtype=np.float32)[None, :]
        consumed = {e.item_id for e in state.recent_events}
        # Enough exact neighbours that K survive both filters (a genre is on ~1/6 of items).
        _, found = index.search(query, 20 * K + len(consumed))
        ranked = [items[i] for i in found[0] if i >= 0 and items[i] not in consumed]
        allowed = [i for i in ranked if not banned & set(synthetic_genres(int(i[1:])))]
        for key, user, exact in (("plain", f"r{u}", ranked[:K]),
                                 ("dislike", f"rd{u}", allowed[:K])):
            got = {i.item_id for i in client.recommend(user, k=K).items}
            out[key].append(len(got & set(exact)) / K)
        scores = boosted_scores(client, rclient, f"rp{u}", vectors, query[0], carriers)
        order = np.argsort(-scores, kind="stable")[: 2 * K + len(consumed)]
        exact = [items[i] for i in order if items[i] not in consumed][:K]
        got = {i.item_id for i in client.recommend(f"rp{u}", k=K).items}
        out["positive"].append(len(got & set(exact)) / K)
    return {key: {"mean": round(float(np.mean(v)), 4), "min": float(np.min(v)), "n": len(v)}
            for key, v in out.items()}


def throughput(client: InterestClient, user: str, threads: int, seconds: float) -> float:
    """Recommend calls per second with `threads` concurrent callers."""
    counts = [0] * threads
    deadline = time.perf_counter() + seconds

    def loop(n: int) -> None:
        while time.perf_counter() < deadline:
            client.recommend(user, k=K)
            counts[n] += 1

    workers = [threading.Thread(target=loop, args=(n,)) for n in range(threads)]
    t0 = time.perf_counter()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return sum(counts) / (time.perf_counter() - t0)


def measure_size(n: int, requests: int, threads: int, tput_s: float, seed: int,
                 blas: int, profile: bool, users: int, ann_min_items: int = Settings.ann_min_items,
                 compare_tree: str = "") -> dict[str, Any]:
    """One catalog size: server vs FAISS vs numpy, interleaved request by request; the server
    and the in-process peers get the same BLAS/OpenMP thread count. With `compare_tree`, a
    second server built from that tree's sources joins the same loop (see the module doc)."""
    rng = random.Random(seed)
    vectors = unit_vectors(n, seed=seed)
    out: dict[str, Any] = {"items": n, "ann": n >= ann_min_items}
    extra = ("--ann-min-items", str(ann_min_items))
    with private_redis(persist=False) as (redis_server, rclient), contextlib.ExitStack() as stack:
        t0 = time.perf_counter()
        items = store_synthetic_catalog(rclient, vectors, default_model_id())
        out["store_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        other = None
        if compare_tree:
            env = {**thread_env(blas), "PYTHONPATH": str(Path(compare_tree) / "server")}
            other = stack.enter_context(stack.enter_context(
                ServerProcess("real", redis_server.url, *extra, env=env)).client())
        with ServerProcess("real", redis_server.url, *extra, env=thread_env(blas)) as server, \
                server.client() as client, threadpool_limits(blas):
            faiss.omp_set_num_threads(blas)
            out["server_start_s"] = time.perf_counter() - t0
            out["server_rss_mb"] = server.rss_bytes() / 2**20
            out["dislike_concepts"] = make_users(client, items, rng)
            names = recall_users(client, items, rng, users)
            state = client.get_user_state("beh", include_vector=True)
            query = np.asarray(state.interest_vector, dtype=np.float32)[None, :]
            index = faiss.IndexFlatIP(vectors.shape[1])
            index.add(vectors)
            consumed = int(state.consumed_count)
            # "server": the plain call right after the in-process peers swept ~300 MB
            # (FAISS and numpy over the fp32 matrix) through the shared last-level cache, so it
            # scans cold codes; "server_repeat": the same call again right after the dislike
            # call, with nothing else in between (warm codes).
            samples: dict[str, list[float]] = {"server": [], "server_dislike": [],
                                               "server_repeat": [], "server_positive": [],
                                               "faiss": [], "numpy": []}
            if other is not None:
                samples.update(compare=[], compare_dislike=[])
                out["compare_tree"], out["compare_differing_responses"] = compare_tree, 0
            agree: list[float] = []
            for r in range(requests + 10):
                if other is not None and r % 2 == 0:
                    theirs = _compare_calls(other, samples, r >= 10)
                t0 = time.perf_counter()
                resp = client.recommend("beh", k=K)
                t1 = time.perf_counter()
                dis = client.recommend("dis", k=K)
                t2 = time.perf_counter()
                client.recommend("beh", k=K)  # again, before the peers sweep the caches
                t2b = time.perf_counter()
                client.recommend("pos", k=K)
                t2p = time.perf_counter()
                if other is not None:
                    if r % 2 == 1:
                        theirs = _compare_calls(other, samples, r >= 10)
                    out["compare_differing_responses"] += sum(
                        a.SerializeToString(deterministic=True)
                        != b.SerializeToString(deterministic=True)
                        for a, b in zip((resp, dis), theirs, strict=True))
                t2c = time.perf_counter()
                _, found = index.search(query, K + consumed)
                t3 = time.perf_counter()
                scores = vectors @ query[0]
                top = np.argpartition(-scores, K + consumed)[: K + consumed]
                top = top[np.argsort(-scores[top])]
                t4 = time.perf_counter()
                if r < 10:
                    continue  # warm-up
                for key, dt in zip(("server", "server_dislike", "server_repeat",
                                    "server_positive", "faiss", "numpy"),
                                   (t1 - t0, t2 - t1, t2b - t2, t2p - t2b, t3 - t2c, t4 - t3),
                                   strict=True):
                    samples[key].append(dt)
                exact = [items[i] for i in found[0] if items[i] not in
                         {e.item_id for e in state.recent_events}][:K]
                agree.append(len({i.item_id for i in resp.items} & set(exact)) / K)
            out["removed_by_dislikes"] = dis.removed_by_dislikes
            out["latency"] = {k: stats_ms(v) for k, v in samples.items()}
            out["server_recall_at_10_vs_faiss"] = float(np.mean(agree))
            out["numpy_top_matches_faiss"] = bool(set(top.tolist()) == set(found[0].tolist()))
            out["recall_at_10_vs_exact"] = recall_at_k(client, rclient, index, vectors, items,
                                                       names)
            out["throughput_rps"], out["profile"] = {}, {}
            for key, user in (("server", "beh"), ("server_dislike", "dis"),
                              ("server_positive", "pos")):
                prof = profile_pyspy.start(server.pid, tput_s, f"rec_{user}") if profile else None
                out["throughput_rps"][key] = throughput(client, user, threads, tput_s)
                if prof is not None:
                    out["profile"][key] = profile_pyspy.finish(prof)
            out["throughput_threads"] = threads
    lat = out["latency"]
    out["dislike_adds_ms"] = {p: round(lat["server_dislike"][p] - lat["server"][p], 3)
                              for p in ("p50_ms", "p99_ms")}
    out["positive_adds_ms"] = {p: round(lat["server_positive"][p] - lat["server"][p], 3)
                               for p in ("p50_ms", "p99_ms")}
    return out


def _compare_calls(other: InterestClient, samples: dict[str, list[float]], keep: bool
                   ) -> tuple[Any, Any]:
    """The comparison server's plain and dislike responses, timed into `samples`."""
    t0 = time.perf_counter()
    plain = other.recommend("beh", k=K)
    t1 = time.perf_counter()
    dis = other.recommend("dis", k=K)
    t2 = time.perf_counter()
    if keep:
        samples["compare"].append(t1 - t0)
        samples["compare_dislike"].append(t2 - t1)
    return plain, dis


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--full", action="store_true", help="add the 1,000,000-item catalog")
    parser.add_argument("--requests", type=int, default=300, help="timed calls per variant")
    parser.add_argument("--threads", type=int, default=4, help="callers in the throughput run")
    parser.add_argument("--tput-s", type=float, default=4.0, help="seconds per throughput run")
    parser.add_argument("--cpu-threads", type=int, default=1,
                        help="BLAS/OpenMP threads of the server process and of the peers "
                        "(1: on this shared 2-core box 2 threads made both 2-4x slower)")
    parser.add_argument("--profile", action="store_true",
                        help="py-spy the server during the throughput runs of the largest size")
    parser.add_argument("--recall-users", type=int, default=20,
                        help="users (each with and without the dislike) for recall@10 vs exact")
    parser.add_argument("--ann-min-items", type=int, default=Settings.ann_min_items,
                        help="the server's --ann-min-items: catalogs at least this big use the "
                        "approximate PQ scan, smaller ones the exact (certified) one")
    parser.add_argument("--compare-tree", default="",
                        help="also run a server from DIR/server's sources in the same loop "
                        "(e.g. a copy of the previous commit) and compare its responses")
    parser.add_argument("--tag", default="", help="results/recommend_<tag>.json instead")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")] + ([1_000_000] if args.full else [])
    started = machine()
    runs = []
    for n in sizes:
        runs.append(measure_size(n, args.requests, args.threads, args.tput_s, seed=n,
                                 blas=args.cpu_threads, profile=args.profile and n == sizes[-1],
                                 users=args.recall_users, ann_min_items=args.ann_min_items,
                                 compare_tree=args.compare_tree))
        print(f"  {n:,} items done", flush=True)
    rows = []
    for r in runs:
        lat = r["latency"]
        target = {100_000: "p99 <= 5", 1_000_000: "p99 <= 10"}.get(r["items"], "")
        rows.append([r["items"], lat["server"]["p50_ms"], lat["server"]["p99_ms"],
                     lat["server_repeat"]["p50_ms"], lat["server_repeat"]["p99_ms"],
                     lat["server_dislike"]["p50_ms"], lat["server_dislike"]["p99_ms"],
                     r["dislike_adds_ms"]["p50_ms"], lat["server_positive"]["p50_ms"],
                     lat["server_positive"]["p99_ms"], lat["faiss"]["p50_ms"],
                     lat["faiss"]["p99_ms"], lat["numpy"]["p50_ms"],
                     round(lat["server"]["p50_ms"] / lat["faiss"]["p50_ms"], 2),
                     r["throughput_rps"]["server"], r["throughput_rps"]["server_dislike"],
                     r["throughput_rps"]["server_positive"],
                     r["recall_at_10_vs_exact"]["plain"]["mean"],
                     r["recall_at_10_vs_exact"]["dislike"]["mean"],
                     r["recall_at_10_vs_exact"]["positive"]["mean"],
                     "ann" if r["ann"] else "exact", target])
    print_table(f"Recommend k={K} (ms; FAISS IndexFlatIP / numpy in the same loop; "
                f"throughput with {args.threads} callers)",
                ["items", "p50", "p99", "repeat_p50", "repeat_p99", "dislike_p50",
                 "dislike_p99", "filter_adds_p50", "positive_p50", "positive_p99",
                 "faiss_p50", "faiss_p99", "numpy_p50", "p50/faiss", "rps", "rps_dislike",
                 "rps_positive", "recall@10", "recall@10_dislike", "recall@10_positive", "path",
                 "target"], rows)
    for r in runs:
        if "compare_tree" in r:
            lat = r["latency"]
            print(f"\n{r['items']:,} items, same loop: this tree plain p50/p99 "
                  f"{lat['server']['p50_ms']}/{lat['server']['p99_ms']} ms, dislike "
                  f"{lat['server_dislike']['p50_ms']}/{lat['server_dislike']['p99_ms']} ms; "
                  f"{r['compare_tree']}: plain {lat['compare']['p50_ms']}/"
                  f"{lat['compare']['p99_ms']} ms, dislike {lat['compare_dislike']['p50_ms']}/"
                  f"{lat['compare_dislike']['p99_ms']} ms; responses differing: "
                  f"{r['compare_differing_responses']}")
    write_result("recommend" + (f"_{args.tag}" if args.tag else ""),
                 {"k": K, "dislike_text": DISLIKE, "like_text": LIKE,
                  "cpu_threads": args.cpu_threads,
                  "ann_min_items": args.ann_min_items,
                  "pythonpath": os.environ.get("PYTHONPATH", ""), "runs": runs},
                 started)


if __name__ == "__main__":
    main()
