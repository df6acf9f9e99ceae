"""EncodeInterest latency: the learned concept extractor against the rule parser, side by side.

Two real servers on one Redis and one catalog (MovieLens-100K when found, else the shipped demo
films), one with `--concept-extractor learned` (the default) and one with `rules`; every
description is sent to both, alternating which goes first, so both see the same load. The
descriptions are the concept dataset's train and dev rows (varied lengths and languages; the
test split is not used here), cycled until `--calls` per server.
"""

from __future__ import annotations

import argparse
import contextlib
import time
from typing import Any

from _common import (
    ServerProcess,
    machine,
    print_table,
    private_redis,
    stats_ms,
    thread_env,
    write_result,
)
from interest_server.model.encoder import TextEncoder
from interest_server.offline.concept_dataset import load_concept_rows
from interest_server.offline.demo_catalog import load_films
from interest_server.offline.movielens import default_data_dir, load_movielens
from interest_server.recommend.item_index import CatalogItem, embedding_text
from interest_server.state.catalog import CatalogStore

TARGET_P50_MS = 15.0


def catalog(data: str) -> tuple[str, list[Any]]:
    """(name, movies) of MovieLens where found, else the shipped demo films."""
    try:
        return "MovieLens-100K", load_movielens(data).movies
    except (FileNotFoundError, OSError):
        return "demo films", load_films()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", default=str(default_data_dir()))
    parser.add_argument("--calls", type=int, default=300, help="timed calls per server")
    parser.add_argument("--cpu-threads", type=int, default=1,
                        help="torch/BLAS threads in each server (1: see bench/README.md)")
    parser.add_argument("--tag", default="", help="results/encode_interest_<tag>.json instead")
    args = parser.parse_args()
    started = machine()
    name, movies = catalog(args.data)
    texts = [r.text for r in load_concept_rows() if r.split in ("train", "dev")]
    encoder = TextEncoder(device="cpu")
    items = [(m.item_id, m.text(), {k: tuple(v) for k, v in m.attributes().items()})
             for m in movies]
    vectors = encoder.embed([embedding_text(t, a) for _, t, a in items])
    kinds = ("learned", "rules")
    samples: dict[str, list[float]] = {k: [] for k in kinds}
    with contextlib.ExitStack() as stack:
        redis_server, client = stack.enter_context(private_redis())
        CatalogStore(client, 100_000).upsert([
            CatalogItem(i, t, a, v, encoder.model_id)
            for (i, t, a), v in zip(items, vectors, strict=True)])
        clients = {k: stack.enter_context(stack.enter_context(ServerProcess(
            "real", redis_server.url, "--concept-extractor", k,
            env=thread_env(args.cpu_threads))).client()) for k in kinds}
        for n in range(args.calls + 10):
            text = texts[n % len(texts)]
            order = kinds if n % 2 == 0 else kinds[::-1]
            for kind in order:
                t0 = time.perf_counter()
                clients[kind].encode_interest(f"{kind}-{n}", text)
                if n >= 10:  # the first calls warm both servers
                    samples[kind].append(time.perf_counter() - t0)
    lat = {k: stats_ms(v) for k, v in samples.items()}
    ratio = lat["learned"]["p50_ms"] / lat["rules"]["p50_ms"]
    print_table(f"EncodeInterest on {args.calls} varied descriptions each ({name} catalog, ms)",
                ["extractor", "p50", "p99", "target"],
                [["learned (default)", lat["learned"]["p50_ms"], lat["learned"]["p99_ms"],
                  f"p50 <= {TARGET_P50_MS:g}"],
                 ["rules", lat["rules"]["p50_ms"], lat["rules"]["p99_ms"], ""],
                 ["learned / rules (p50)", round(ratio, 3), "", ""]])
    write_result("encode_interest" + (f"_{args.tag}" if args.tag else ""),
                 {"catalog": name, "texts": len(texts), "cpu_threads": args.cpu_threads,
                  "latency": lat, "p50_ratio_learned_to_rules": ratio,
                  "target_p50_ms": TARGET_P50_MS}, started)


if __name__ == "__main__":
    main()
