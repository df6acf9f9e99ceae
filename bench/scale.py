"""The interest server at catalog scale: 100k varied item texts embedded with the default model,
~1M structured events, ANN recall@10 on realistic user vectors, Redis bytes per user and
Recommend p50/p99 of the default and (given a checkpoint) the learned model vs FAISS.

Data (scale_data.py): item texts from templates and word lists over 5 domains and 54 categories
(so their embeddings cluster like real ones), embedded once with the server's default encoder
and cached in bench/.cache/ (git-ignored) with the catalog JSONL and the events CSV that
`interest-server train --events FILE --catalog FILE` reads. Queries are users' decayed-average
interest vectors (scale_data.interest_queries), not random vectors."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import scale_data
from _common import BENCH, RESULTS, machine, print_table, stats_ms, write_result
from scale_data import Catalog

CACHE = BENCH / ".cache"
K = 10
EMBED_CHUNK = 5000
SMOKE = {"items": 300, "users": 150, "events": 6000, "queries": 50, "stream_users": 30,
         "requests": 30}
FULL = {"items": 100_000, "users": 30_000, "events": 1_000_000, "queries": 300,
        "stream_users": 1000, "requests": 300}


def _embed_chunks(texts: list[str], folder: Path, threads: int, chunk: int = 5000
                  ) -> tuple[np.ndarray, float, int]:  # chunk: EMBED_CHUNK
    """Vectors of `texts` with the server's default TextEncoder, cached chunk by chunk (an
    interrupted run resumes); (vectors, seconds spent embedding in this run, texts embedded)."""
    import torch
    from interest_server.config import Settings
    from interest_server.model.encoder import TextEncoder

    torch.set_num_threads(threads)
    encoder = None
    parts, spent, done = [], 0.0, 0
    for start in range(0, len(texts), chunk):
        path = folder / f"vectors_{start:07d}.npy"
        if not path.exists():
            if encoder is None:
                encoder = TextEncoder(runtime=Settings.encoder_runtime)
                encoder.embed(texts[:64])  # warm-up (and the traced module's first call)
            t0 = time.perf_counter()
            block = encoder.embed(texts[start:start + chunk]).astype(np.float32)
            spent += time.perf_counter() - t0
            done += len(block)
            np.save(path, block)
            print(f"  embedded {start + len(block):,} / {len(texts):,} "
                  f"({done / spent:.0f} texts/s)", flush=True)
        parts.append(np.load(path))
    return np.vstack(parts), spent, done


def _shown(path: Path) -> str:
    """A path relative to the repository when it lies inside it."""
    return str(path.relative_to(BENCH.parent) if path.is_relative_to(BENCH.parent) else path)


def prepare(size: dict[str, int], seed: int, threads: int, cache: Path = CACHE,
            limit: int = 0) -> dict[str, Any]:
    """Catalog (JSONL), vectors (embedded or cached), events (CSV), all under bench/.cache/.
    `limit`: only the first `limit` items (a multiple of the embedding chunk), e.g. while the
    rest is still being embedded; events are then drawn over those items only."""
    from _common import default_model_id
    from interest_server.recommend.item_index import embedding_text

    model = default_model_id()
    folder = cache / f"scale_{size['items']}_{seed}_{model.replace('/', '_')[:40]}"
    folder.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    catalog = scale_data.make_catalog(size["items"], seed)
    catalog_path = folder / "catalog.jsonl"
    if not catalog_path.exists():
        scale_data.write_catalog_jsonl(catalog, catalog_path)
    if limit:
        if limit % EMBED_CHUNK:
            raise SystemExit(f"--limit-items must be a multiple of {EMBED_CHUNK}")
        catalog = Catalog(catalog.rows[:limit], catalog.category[:limit], catalog.categories)
    texts = [embedding_text(r["text"], {k: tuple(v) for k, v in r["attributes"].items()})
             for r in catalog.rows]
    gen_s = time.perf_counter() - t0
    meta_path = folder / "embedding.json"
    vectors, spent, done = _embed_chunks(texts, folder, threads)
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    if done:
        meta = {"texts": meta.get("texts", 0) + done, "seconds": meta.get("seconds", 0) + spent,
                "torch_threads": threads, "runtime": "default (Settings.encoder_runtime)",
                "mean_chars": float(np.mean([len(t) for t in texts])), "model": model}
        meta_path.write_text(json.dumps(meta, indent=2) + "\n")
    t0 = time.perf_counter()
    events = scale_data.make_events(catalog, size["users"], size["events"], seed + 1)
    events_s = time.perf_counter() - t0
    events_path = folder / (f"events_{limit}.csv" if limit else "events.csv")
    scale_data.write_events_csv(events, catalog.ids, events_path)  # seconds; kept in step
    return {"folder": folder, "events_path": events_path, "catalog": catalog,
            "vectors": vectors, "events": events, "model": model, "texts": texts,
            "info": {"catalog_file": _shown(catalog_path),
                     "events_file": _shown(events_path),
                     "items": len(catalog.rows), "categories": len(catalog.categories),
                     "unique_texts": len(set(texts)), "users": size["users"],
                     "events": len(events.user), "generate_catalog_s": round(gen_s, 2),
                     "generate_events_s": round(events_s, 2),
                     "embedding": {**meta, "texts_per_s": round(meta["texts"] / meta["seconds"], 1)
                                   if meta.get("seconds") else None,
                                   "embedded_this_run": done}}}



def _recall(vectors: np.ndarray, query: np.ndarray, found: np.ndarray, kth: float) -> float:
    """Share of the K returned rows whose exact score reaches the K-th exact score (ties with
    the K-th item count as hits: the catalog holds some identical texts)."""
    rows = found[found >= 0][:K]
    return float(np.count_nonzero(vectors[rows] @ query >= kth - 1e-6)) / K


def _sweep(name: str, setting: str, values: list[int], apply: Any, search: Any,
           vectors: np.ndarray, queries: np.ndarray, kth: np.ndarray, build_s: float
           ) -> list[dict[str, Any]]:
    """recall@K and per-query latency of `search(query) -> rows` at each setting value."""
    out = []
    for value in values:
        apply(value)
        search(queries[0])  # warm
        times, recalls = [], []
        for q, t in zip(queries, kth, strict=True):
            t0 = time.perf_counter()
            rows = search(q)
            times.append(time.perf_counter() - t0)
            recalls.append(_recall(vectors, q, rows, t))
        out.append({"method": name, "setting": f"{setting}={value}" if setting else "",
                    "recall_at_10": round(float(np.mean(recalls)), 4),
                    "recall_min": float(np.min(recalls)), "build_s": round(build_s, 2),
                    "latency": stats_ms(times)})
        print(f"  {name} {setting}={value}: recall@10 {out[-1]['recall_at_10']}, "
              f"p50 {out[-1]['latency']['p50_ms']} ms", flush=True)
    return out


def ann_recall(vectors: np.ndarray, queries: np.ndarray, small: bool) -> list[dict[str, Any]]:
    """FAISS exact, HNSW and IVF, and the server's own scanners (scan.py, as ranking.py uses
    them: a shortlist of max(SHORTLIST, 4k) rows re-scored in fp32), on the same queries."""
    import faiss
    from interest_server.recommend.scan import SHORTLIST, build_scanner

    n, dim = vectors.shape
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    flat = faiss.IndexFlatIP(dim)
    flat.add(vectors)
    exact_scores, _ = flat.search(queries, K)
    kth = exact_scores[:, K - 1]
    runs = _sweep("faiss_flat", "", [0], lambda v: None,
                  lambda q: flat.search(q[None, :], K)[1][0], vectors, queries, kth, 0.0)

    t0 = time.perf_counter()
    hnsw = faiss.IndexHNSWFlat(dim, 32, faiss.METRIC_INNER_PRODUCT)
    hnsw.hnsw.efConstruction = 64
    hnsw.add(vectors)
    runs += _sweep("faiss_hnsw32", "efSearch", [16, 32, 64, 128, 256, 512, 1024, 2048],
                   lambda v: setattr(hnsw.hnsw, "efSearch", v),
                   lambda q: hnsw.search(q[None, :], K)[1][0], vectors, queries, kth,
                   time.perf_counter() - t0)

    t0 = time.perf_counter()
    nlist = max(16, int(4 * np.sqrt(n)))
    quantizer = faiss.IndexFlatIP(dim)
    ivf = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss.METRIC_INNER_PRODUCT)
    ivf.train(vectors[np.random.default_rng(0).choice(n, min(n, 50 * nlist), replace=False)])
    ivf.add(vectors)
    runs += _sweep(f"faiss_ivf{nlist}", "nprobe",
                   [p for p in (1, 4, 8, 16, 32, 64, 128) if p <= nlist],
                   lambda v: setattr(ivf, "nprobe", v),
                   lambda q: ivf.search(q[None, :], K)[1][0], vectors, queries, kth,
                   time.perf_counter() - t0)

    want = max(SHORTLIST, 4 * K)
    keep = np.ones(n, dtype=bool)
    for kind in ("ann", "exact"):
        t0 = time.perf_counter()
        scanner = build_scanner(vectors, 0, ann=kind == "ann")
        built = time.perf_counter() - t0

        def search(q: np.ndarray, scanner: Any = scanner) -> np.ndarray:
            rows = scanner.candidates(q, keep, want).rows
            scores = vectors[rows] @ q
            return rows[np.argsort(-scores, kind="stable")[:K]]
        label = "server_scan_pq_fastscan" if kind == "ann" else "server_scan_int8_certified"
        runs += _sweep(label, "shortlist", [want], lambda v: None, search, vectors, queries, kth,
                       built)
    if small:
        return runs
    return runs


def query_users(ev: scale_data.Events, count: int, seed: int, min_events: int = 5) -> np.ndarray:
    """`count` users (sorted) with at least `min_events` events, chosen at random."""
    per_user = np.bincount(ev.user)
    eligible = np.flatnonzero(per_user >= min_events)
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(eligible, size=min(count, len(eligible)), replace=False))


def user_bytes(rclient: Any, users: list[str]) -> dict[str, Any]:
    """MEMORY USAGE (exact, SAMPLES 0) summed over every key of each user."""
    import dataclasses

    from interest_server.state.keys import UserKeys, user_keys

    names = [f.name for f in dataclasses.fields(UserKeys)]
    pipe = rclient.pipeline(transaction=False)
    for user in users:
        for key in user_keys(user).all():
            pipe.memory_usage(key, samples=0)
    sizes = np.array([int(r or 0) for r in pipe.execute()], dtype=np.int64).reshape(len(users), -1)
    totals = sizes.sum(axis=1)
    assert len(names) == sizes.shape[1]  # UserKeys.all() lists the keys in field order
    return {"users": len(users), "mean_bytes": round(float(totals.mean()), 1),
            "median_bytes": int(np.median(totals)), "max_bytes": int(totals.max()),
            "min_bytes": int(totals.min()),
            "by_key_mean_bytes": {n: round(float(sizes[:, i].mean()), 1)
                                  for i, n in enumerate(names) if sizes[:, i].any()}}


def stream_users(client: Any, ev: scale_data.Events, users: np.ndarray, item_ids: list[str]
                 ) -> dict[str, Any]:
    """Every event of `users`, in time order, through StreamEvents (timestamps kept)."""
    rows = np.flatnonzero(np.isin(ev.user, users))
    events = ({"user_id": f"u{ev.user[r]}", "item_id": item_ids[ev.item[r]],
               "type": scale_data.EVENT_TYPES[ev.type[r]], "timestamp_ms": int(ev.ts[r]) * 1000}
              for r in rows.tolist())
    t0 = time.perf_counter()
    status: dict[int, int] = {}
    for ack in client.stream_events(events, batch_size=200):
        status[ack.status] = status.get(ack.status, 0) + 1
    return {"events": int(len(rows)), "seconds": round(time.perf_counter() - t0, 2),
            "ack_status_counts": status}


def serve_and_time(data: dict[str, Any], size: dict[str, int], seed: int, cpu: int,
                   checkpoint: str) -> dict[str, Any]:
    """Default model (and the learned one, given a checkpoint) behind real servers, each on its
    own Redis with the same catalog and the same users' events streamed in over gRPC; Recommend
    k=10 interleaved call by call with an exact FAISS search of the user's interest vector."""
    import contextlib

    import faiss
    from _common import ServerProcess, private_redis, store_catalog_rows, thread_env
    from threadpoolctl import threadpool_limits

    catalog: Catalog = data["catalog"]
    vectors, ev, ids = data["vectors"], data["events"], catalog.ids
    users = query_users(ev, size["stream_users"], seed + 7)
    names = [f"u{u}" for u in users.tolist()]
    models = {"default": ()} | ({"learned": ("--interest-model-path", checkpoint)}
                                if checkpoint else {})
    out: dict[str, Any] = {"streamed_users": len(names), "models": {}}
    with contextlib.ExitStack() as stack, threadpool_limits(cpu):
        faiss.omp_set_num_threads(cpu)
        clients = {}
        for model, extra in models.items():
            server_redis, rclient = stack.enter_context(private_redis(persist=False))
            t0 = time.perf_counter()
            store_catalog_rows(rclient, catalog.rows, vectors, data["model"])
            store_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            server = stack.enter_context(ServerProcess("real", server_redis.url, *extra,
                                                       env=thread_env(cpu)))
            client = stack.enter_context(server.client())
            info = {"store_catalog_s": round(store_s, 1),
                    "server_start_s": round(time.perf_counter() - t0, 1),
                    "server_rss_mb": round(server.rss_bytes() / 2**20),
                    "ingest": stream_users(client, ev, users, ids)}
            info["redis_bytes_per_user"] = user_bytes(rclient, names)
            out["models"][model] = info
            clients[model] = client
            print(f"  {model}: {info}", flush=True)
        index = faiss.IndexFlatIP(vectors.shape[1])
        index.add(vectors)
        states = [clients["default"].get_user_state(u, include_vector=True) for u in names]
        queries = np.asarray([s.interest_vector for s in states], dtype=np.float32)
        consumed = [{e.item_id for e in s.recent_events} for s in states]
        own = scale_data.interest_queries(ev, vectors, users)
        out["query_vs_bench_vector_cosine_mean"] = round(float(np.mean(np.sum(
            queries * own, axis=1))), 4)
        # "default_cosine": the default model asked for popularity_weight 0 and consumed items
        # kept, so its list is the pure cosine top-k that FAISS computes over every item (the
        # default score mixes in popularity and drops what the user consumed).
        calls = {m: (c, {}) for m, c in clients.items()}
        calls["default_cosine"] = (clients["default"],
                                   {"popularity_weight": 0.0, "exclude_consumed": False})
        samples: dict[str, list[float]] = {m: [] for m in calls} | {"faiss_flat": []}
        recall: dict[str, list[float]] = {"default": [], "default_cosine": []}
        for r in range(size["requests"] + 10):
            n = r % len(names)
            got = {}
            for model, (client, options) in calls.items():
                t0 = time.perf_counter()
                got[model] = client.recommend(names[n], k=K, **options)
                if r >= 10:
                    samples[model].append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            _, found = index.search(queries[n:n + 1], K + len(consumed[n]))
            if r >= 10:
                samples["faiss_flat"].append(time.perf_counter() - t0)
            if r < len(names):
                exact = {"default": [ids[i] for i in found[0] if ids[i] not in consumed[n]][:K],
                         "default_cosine": [ids[i] for i in found[0][:K]]}
                for key, values in recall.items():
                    values.append(len({i.item_id for i in got[key].items} & set(exact[key])) / K)
        out["latency"] = {k: stats_ms(v) for k, v in samples.items()}
        out["recall_at_10_vs_faiss"] = {k: round(float(np.mean(v)), 4) for k, v in recall.items()}
        base = out["latency"]["faiss_flat"]
        out["ratio_to_faiss"] = {m: {p: round(out["latency"][m][p] / base[p], 2)
                                     for p in ("p50_ms", "p99_ms")} for m in calls}
    return out


def train(data: dict[str, Any], out: Path, time_limit_s: int, threads: int) -> dict[str, Any]:
    """`interest-server train --events <events.csv> --redis-url <a Redis holding the catalog>`
    under /usr/bin/time -v: the catalog's stored vectors are used (a --catalog file would be
    embedded again). Wall time and peak RSS of the training process."""
    import subprocess
    import sys

    from _common import private_redis, store_catalog_rows

    out.parent.mkdir(parents=True, exist_ok=True)
    with private_redis(persist=False) as (server, rclient):
        store_catalog_rows(rclient, data["catalog"].rows, data["vectors"], data["model"])
        cmd = ["/usr/bin/time", "-v", str(Path(sys.executable).parent / "interest-server"),
               "train", "--events", str(data["events_path"]), "--redis-url",
               server.url, "--out", str(out), "--time-limit-s", str(time_limit_s),
               "--threads", str(threads), "--quiet", "--force"]
        print("training:", " ".join(cmd[2:]), flush=True)
        t0 = time.perf_counter()
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        wall = time.perf_counter() - t0
    peak = next((int(line.split()[-1]) for line in done.stderr.splitlines()
                 if "Maximum resident set size" in line), 0)
    tail = [line for line in (done.stdout + done.stderr).splitlines()
            if line.strip() and not line.startswith("\t")][-60:]
    print("\n".join(tail), flush=True)
    if done.returncode != 0 or not out.is_file():
        raise SystemExit(f"training failed (exit {done.returncode})")
    return {"wall_s": round(wall, 1), "peak_rss_mb": round(peak / 1024), "threads": threads,
            "time_limit_s": time_limit_s,
            "command": " ".join(["interest-server", *cmd[3:]]).replace(server.url, "REDIS_URL")
            .replace(str(BENCH.parent) + "/", ""),
            "output_tail": tail, "checkpoint_bytes": out.stat().st_size}


def report(payload: dict[str, Any]) -> None:
    """The recall table and the serving table."""
    if payload["ann"]:
        print_table(f"recall@{K} vs exact top-{K} on user interest vectors "
                    "(per-query ms, 1 thread)",
                    ["method", "setting", "recall@10", "min", "p50_ms", "p99_ms", "build_s",
                     ">=0.99"],
                    [[r["method"], r["setting"], r["recall_at_10"], r["recall_min"],
                      r["latency"]["p50_ms"], r["latency"]["p99_ms"], r["build_s"],
                      "yes" if r["recall_at_10"] >= 0.99 else "no"] for r in payload["ann"]])
    serve = payload["serve"]
    rows = []
    for model, lat in serve["latency"].items():
        info = serve["models"].get(model.removesuffix("_cosine"), {})
        ratio = serve["ratio_to_faiss"].get(model, {})
        rows.append([model, lat["p50_ms"], lat["p99_ms"], ratio.get("p50_ms", 1.0),
                     ratio.get("p99_ms", 1.0),
                     info.get("redis_bytes_per_user", {}).get("mean_bytes", "-"),
                     info.get("server_rss_mb", "-")])
    print_table(f"Recommend k={K} over gRPC, {serve['streamed_users']} users, interleaved with "
                f"FAISS IndexFlatIP (recall@10 vs FAISS: {serve['recall_at_10_vs_faiss']})",
                ["model", "p50_ms", "p99_ms", "p50/faiss", "p99/faiss", "redis_B/user",
                 "rss_mb"], rows)


def plot(runs: list[dict[str, Any]], path: Path, items: int) -> None:
    """recall@10 against p50 latency per method (one line per sweep)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for method in dict.fromkeys(r["method"] for r in runs):
        pts = [r for r in runs if r["method"] == method]
        ax.plot([r["latency"]["p50_ms"] for r in pts], [r["recall_at_10"] for r in pts],
                marker="o", label=method)
        for r in pts:
            if r["setting"]:
                ax.annotate(r["setting"].split("=")[-1], (r["latency"]["p50_ms"],
                            r["recall_at_10"]), fontsize=7, textcoords="offset points",
                            xytext=(3, -9))
    ax.axhline(0.99, color="grey", linestyle=":", linewidth=1)
    ax.set_xscale("log")
    ax.set_xlabel("per-query p50 latency (ms, 1 thread, log scale)")
    ax.set_ylabel("recall@10 vs exact")
    ax.set_title(f"ANN on {items:,} embedded item texts, user interest vectors as queries")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    print(f"wrote {path.relative_to(BENCH.parent)}")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="2,000 items, 20k events: seconds")
    parser.add_argument("--prepare-only", action="store_true",
                        help="build and cache the catalog, vectors and events, measure nothing")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--embed-threads", type=int, default=1,
                        help="torch threads for the one-off catalog embedding (2 ran 5x slower "
                        "than 1 on this shared box)")
    parser.add_argument("--cpu-threads", type=int, default=1,
                        help="BLAS/OpenMP threads of the servers and the in-process FAISS")
    parser.add_argument("--checkpoint", default="",
                        help="a learned model (`interest-server train --out`); absent: skipped")
    parser.add_argument("--train", default="",
                        help="first train a learned model into this file (interest-server train "
                        "on the events, the catalog's vectors read from a private Redis), then "
                        "use it as --checkpoint")
    parser.add_argument("--train-time-limit-s", type=int, default=1200)
    parser.add_argument("--train-threads", type=int, default=1)
    parser.add_argument("--tag", default="", help="results/scale_<tag>.json instead")
    parser.add_argument("--skip-ann", action="store_true",
                        help="skip the ANN recall part (e.g. a rerun for the learned model)")
    parser.add_argument("--limit-items", type=int, default=0,
                        help="use only the first N items of the catalog (a multiple of 5,000)")
    parser.add_argument("--cache-dir", default=str(CACHE),
                        help="where the catalog, its vectors and the events are kept")
    args = parser.parse_args(argv)
    size = SMOKE if args.smoke else FULL
    started = machine()
    t0 = time.perf_counter()
    data = prepare(size, args.seed, args.embed_threads, Path(args.cache_dir),
                   args.limit_items)
    stage_s = {"prepare": round(time.perf_counter() - t0, 1)}
    print(json.dumps(data["info"], indent=2))
    if args.prepare_only:
        return {"data": data["info"]}
    payload: dict[str, Any] = {"k": K, "size": size, "limit_items": args.limit_items,
                               "data": data["info"], "cpu_threads": args.cpu_threads}
    if args.train:
        payload["training"] = train(data, Path(args.train), args.train_time_limit_s,
                                    args.train_threads)
        args.checkpoint = args.train
    queries_users = query_users(data["events"], size["queries"], args.seed + 3)
    queries = scale_data.interest_queries(data["events"], data["vectors"], queries_users)
    print(f"ANN recall@{K}: {len(queries)} user interest vectors, {len(data['vectors']):,} items",
          flush=True)
    import faiss
    from threadpoolctl import threadpool_limits

    with threadpool_limits(args.cpu_threads):
        faiss.omp_set_num_threads(args.cpu_threads)
        t0 = time.perf_counter()
        payload["ann"] = [] if args.skip_ann else ann_recall(data["vectors"], queries,
                                                             args.smoke)
        stage_s["ann"] = round(time.perf_counter() - t0, 1)
    if not args.checkpoint:
        print("no --checkpoint: the learned model's Recommend and bytes per user are skipped "
              "(train one with `interest-server train --events "
              f"{data['info']['events_file']} --catalog {data['info']['catalog_file']} "
              "--out CKPT`)", flush=True)
    elif not Path(args.checkpoint).is_file():
        raise SystemExit(f"--checkpoint {args.checkpoint}: no such file")
    t0 = time.perf_counter()
    payload["serve"] = serve_and_time(data, size, args.seed, args.cpu_threads, args.checkpoint)
    stage_s["serve"] = round(time.perf_counter() - t0, 1)
    payload["stage_s"] = stage_s
    payload["learned_skipped"] = not args.checkpoint
    report(payload)
    name = "scale" + ("_smoke" if args.smoke else "") + (f"_{args.tag}" if args.tag else "")
    write_result(name, payload, started)
    if not args.smoke and payload["ann"]:
        plot(payload["ann"], RESULTS / f"{name}_recall.png", len(data["vectors"]))
    return payload


if __name__ == "__main__":
    main()
