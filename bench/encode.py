"""EncodeInterest latency, and TextEncoder.embed vs sentence-transformers encode on MovieLens."""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

import numpy as np
import torch
from _common import (
    ServerProcess,
    machine,
    print_table,
    private_redis,
    stats_ms,
    thread_env,
    write_result,
)
from interest_server.catalog import CatalogStore
from interest_server.encoder import TextEncoder, default_model_dir
from interest_server.item_index import CatalogItem, embedding_text
from interest_server.movielens import default_data_dir, load_movielens
from sentence_transformers import SentenceTransformer

SENTENCE = "I love mystery films, I hate romance"


def movielens_items(data: str, limit: int) -> list[tuple[str, str, dict[str, tuple[str, ...]]]]:
    """(id, text, attributes) of the first `limit` movies, as UpsertItems would send them."""
    movies = load_movielens(data).movies[:limit]
    return [(m.item_id, m.text(), {k: tuple(v) for k, v in m.attributes().items()})
            for m in movies]


def embedding_race(te: TextEncoder, st: SentenceTransformer, texts: list[str], rounds: int,
                   single: int) -> dict[str, Any]:
    """texts/s of both encoders on the same texts, alternating rounds; vector agreement."""
    rates: dict[str, list[float]] = {"text_encoder": [], "sentence_transformers": []}
    ours = theirs = np.empty(0)
    for _ in range(rounds):
        t0 = time.perf_counter()
        ours = te.embed(texts)
        t1 = time.perf_counter()
        theirs = st.encode(texts, batch_size=te.batch_size, normalize_embeddings=True,
                           convert_to_numpy=True, show_progress_bar=False)
        t2 = time.perf_counter()
        rates["text_encoder"].append(len(texts) / (t1 - t0))
        rates["sentence_transformers"].append(len(texts) / (t2 - t1))
    cos = np.sum(ours * theirs, axis=1) / (np.linalg.norm(ours, axis=1)
                                           * np.linalg.norm(theirs, axis=1))
    one: dict[str, list[float]] = {"text_encoder": [], "sentence_transformers": []}
    for text in texts[:single]:
        t0 = time.perf_counter()
        te.embed([text])
        t1 = time.perf_counter()
        st.encode([text], normalize_embeddings=True, show_progress_bar=False)
        one["text_encoder"].append(t1 - t0)
        one["sentence_transformers"].append(time.perf_counter() - t1)
    med = {k: statistics.median(v) for k, v in rates.items()}
    return {"texts": len(texts), "rounds": rounds, "batch_size": te.batch_size,
            "texts_per_s": med, "all_rounds": rates,
            "ratio": med["text_encoder"] / med["sentence_transformers"],
            "cosine_min": float(cos.min()), "cosine_mean": float(cos.mean()),
            "vectors_agree": bool(cos.min() >= 0.999),
            "batch1_latency": {k: stats_ms(v) for k, v in one.items()},
            "max_seq_length": {"text_encoder": te.max_seq_length,
                               "sentence_transformers": st.max_seq_length}}


def encode_interest(te: TextEncoder, items: list[tuple[str, str, dict[str, tuple[str, ...]]]],
                    vectors: np.ndarray, calls: int, threads: int) -> dict[str, Any]:
    """EncodeInterest through gRPC vs the same model work in-process, call by call."""
    samples: dict[str, list[float]] = {"grpc_encode_interest": [], "in_process_concepts": [],
                                       "in_process_embed_both": [], "in_process_one_pass": []}
    with private_redis() as (redis_server, client):
        CatalogStore(client, 100_000).upsert([CatalogItem(i, text, attrs, v, te.model_id)
                                              for (i, text, attrs), v in zip(items, vectors,
                                                                             strict=True)])
        with ServerProcess("real", redis_server.url, env=thread_env(threads)) as server, \
                server.client() as c:
            for n in range(calls + 5):
                t0 = time.perf_counter()
                resp = c.encode_interest(f"enc{n}", SENTENCE)
                t1 = time.perf_counter()
                phrases = [x.phrase for x in resp.concepts]
                te.embed_concepts(phrases)
                te.embed(phrases)  # both poolings, one forward pass each (the old server path)
                t2 = time.perf_counter()
                te.embed_both(phrases)  # both poolings from one forward pass
                t3 = time.perf_counter()
                te.embed([SENTENCE])  # the floor: one forward pass of the whole sentence
                t4 = time.perf_counter()
                if n >= 5:
                    for key, dt in zip(samples, (t1 - t0, t2 - t1, t3 - t2, t4 - t3),
                                       strict=True):
                        samples[key].append(dt)
    return {"sentence": SENTENCE, "calls": calls,
            "concepts": [f"{x.phrase} ({'+' if x.polarity == 1 else '-'}) -> "
                         f"{[f'{a.name}={a.value}' for a in x.links]}" for x in resp.concepts],
            "latency": {k: stats_ms(v) for k, v in samples.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", default=str(default_data_dir()))
    parser.add_argument("--texts", type=int, default=1682, help="MovieLens items to embed")
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds per encoder")
    parser.add_argument("--single", type=int, default=50, help="batch-1 calls per encoder")
    parser.add_argument("--calls", type=int, default=100, help="timed EncodeInterest calls")
    parser.add_argument("--cpu-threads", type=int, default=1,
                        help="torch/BLAS threads here and in the server (on this shared 2-core "
                        "box 2 threads made every forward pass several times slower)")
    parser.add_argument("--tag", default="", help="results/encode_<tag>.json instead")
    args = parser.parse_args()
    torch.set_num_threads(args.cpu_threads)
    started = machine()
    items = movielens_items(args.data, args.texts)
    texts = [embedding_text(text, attrs) for _, text, attrs in items]
    te = TextEncoder()
    st = SentenceTransformer(default_model_dir(), device="cpu")
    te.warm()
    st.encode(texts[:32], show_progress_bar=False)
    race = embedding_race(te, st, texts, args.rounds, args.single)
    enc = encode_interest(te, items, te.embed(texts), args.calls, args.cpu_threads)
    rate = race["texts_per_s"]
    print_table(f"catalog embedding, {race['texts']:,} MovieLens texts, batch "
                f"{race['batch_size']} (texts/s, median of {args.rounds} alternating rounds)",
                ["TextEncoder", "sentence-transformers", "ratio", "target", "cos_min",
                 "agree>=0.999"],
                [[rate["text_encoder"], rate["sentence_transformers"], round(race["ratio"], 3),
                  ">= 1.5", round(race["cosine_min"], 6), race["vectors_agree"]]])
    lat = enc["latency"]
    print_table(f"EncodeInterest {SENTENCE!r} ({args.calls} calls, ms)",
                ["what", "p50", "p99", "target"],
                [["gRPC EncodeInterest", lat["grpc_encode_interest"]["p50_ms"],
                  lat["grpc_encode_interest"]["p99_ms"], "p50 <= 15"],
                 ["in-process: embed_concepts + embed (two passes)",
                  lat["in_process_concepts"]["p50_ms"], lat["in_process_concepts"]["p99_ms"], ""],
                 ["in-process: embed_both (one pass)", lat["in_process_embed_both"]["p50_ms"],
                  lat["in_process_embed_both"]["p99_ms"], ""],
                 ["in-process: one pass of the sentence", lat["in_process_one_pass"]["p50_ms"],
                  lat["in_process_one_pass"]["p99_ms"], ""]])
    write_result("encode" + (f"_{args.tag}" if args.tag else ""),
                 {"cpu_threads": args.cpu_threads, "embedding": race, "encode_interest": enc},
                 started)


if __name__ == "__main__":
    main()
