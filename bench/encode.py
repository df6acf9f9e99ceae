"""EncodeInterest latency, and TextEncoder.embed vs sentence-transformers encode on MovieLens."""

from __future__ import annotations

import argparse
import contextlib
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
from interest_server.model.encoder import TextEncoder
from interest_server.model.encoder_runtime import RUNTIMES
from interest_server.model.encoder_weights import default_model_dir
from interest_server.offline.movielens import default_data_dir, load_movielens
from interest_server.recommend.item_index import CatalogItem, embedding_text
from interest_server.state.catalog import CatalogStore
from sentence_transformers import SentenceTransformer

SENTENCE = "I love mystery films, I hate romance"


def movielens_items(data: str, limit: int) -> list[tuple[str, str, dict[str, tuple[str, ...]]]]:
    """(id, text, attributes) of the first `limit` movies, as UpsertItems would send them."""
    movies = load_movielens(data).movies[:limit]
    return [(m.item_id, m.text(), {k: tuple(v) for k, v in m.attributes().items()})
            for m in movies]


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def embedding_race(te: TextEncoder, st: SentenceTransformer, texts: list[str], rounds: int,
                   single: int, baseline: TextEncoder | None = None) -> dict[str, Any]:
    """texts/s of the encoders on the same texts, alternating rounds; vector agreement.

    `baseline` (e.g. the eager runtime) runs in the same rounds, so the runtime's own gain is
    measured under the same load as the ratio to sentence-transformers.
    """
    contenders: dict[str, Any] = {
        "text_encoder": te.embed,
        "sentence_transformers": lambda t: st.encode(
            t, batch_size=te.batch_size, normalize_embeddings=True, convert_to_numpy=True,
            show_progress_bar=False),
    }
    if baseline is not None:
        contenders[f"text_encoder_{baseline.runtime}"] = baseline.embed
    rates: dict[str, list[float]] = {k: [] for k in contenders}
    vectors: dict[str, np.ndarray] = {}
    for _ in range(rounds):
        for key, fn in contenders.items():
            t0 = time.perf_counter()
            vectors[key] = fn(texts)
            rates[key].append(len(texts) / (time.perf_counter() - t0))
    cos = _cosines(vectors["text_encoder"], vectors["sentence_transformers"])
    one: dict[str, list[float]] = {k: [] for k in contenders}
    for text in texts[:single]:
        for key, fn in contenders.items():
            t0 = time.perf_counter()
            fn([text])
            one[key].append(time.perf_counter() - t0)
    med = {k: statistics.median(v) for k, v in rates.items()}
    out = {"texts": len(texts), "rounds": rounds, "batch_size": te.batch_size,
           "runtime": te.runtime, "texts_per_s": med, "all_rounds": rates,
           "ratio": med["text_encoder"] / med["sentence_transformers"],
           "cosine_min": float(cos.min()), "cosine_mean": float(cos.mean()),
           "vectors_agree": bool(cos.min() >= 0.999),
           "batch1_latency": {k: stats_ms(v) for k, v in one.items()},
           "max_seq_length": {"text_encoder": te.max_seq_length,
                              "sentence_transformers": st.max_seq_length}}
    if baseline is not None:
        key = f"text_encoder_{baseline.runtime}"
        base_cos = _cosines(vectors["text_encoder"], vectors[key])
        out["baseline"] = {"runtime": baseline.runtime,
                           "ratio_to_st": med[key] / med["sentence_transformers"],
                           "speedup": med["text_encoder"] / med[key],
                           "cosine_min_vs_ours": float(base_cos.min())}
    return out


def encode_interest(te: TextEncoder, items: list[tuple[str, str, dict[str, tuple[str, ...]]]],
                    vectors: np.ndarray, calls: int, threads: int,
                    baseline: TextEncoder | None = None) -> dict[str, Any]:
    """EncodeInterest through gRPC vs the same model work in-process, call by call.

    With `baseline`, a second server runs that runtime on the same Redis and catalog, and its
    calls interleave with ours, so both see the same load.
    """
    samples: dict[str, list[float]] = {"grpc_encode_interest": [], "in_process_concepts": [],
                                       "in_process_embed_both": [], "in_process_one_pass": []}
    if baseline is not None:
        samples.update({"grpc_encode_interest_baseline": [],
                        "in_process_embed_both_baseline": []})
    with contextlib.ExitStack() as stack:
        redis_server, client = stack.enter_context(private_redis())
        CatalogStore(client, 100_000).upsert([CatalogItem(i, text, attrs, v, te.model_id)
                                              for (i, text, attrs), v in zip(items, vectors,
                                                                             strict=True)])

        def serve(runtime: str) -> Any:
            server = stack.enter_context(ServerProcess(
                "real", redis_server.url, "--encoder-runtime", runtime,
                env=thread_env(threads)))
            return stack.enter_context(server.client())

        c = serve(te.runtime)
        base_c = serve(baseline.runtime) if baseline is not None else None
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
            timed_here = [t1 - t0, t2 - t1, t3 - t2, t4 - t3]
            if baseline is not None and base_c is not None:
                t5 = time.perf_counter()
                base_c.encode_interest(f"base{n}", SENTENCE)
                t6 = time.perf_counter()
                baseline.embed_both(phrases)
                timed_here += [t6 - t5, time.perf_counter() - t6]
            if n >= 5:
                for key, dt in zip(samples, timed_here, strict=True):
                    samples[key].append(dt)
    return {"sentence": SENTENCE, "calls": calls, "runtime": te.runtime,
            "baseline_runtime": baseline.runtime if baseline is not None else None,
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
    parser.add_argument("--runtime", default="auto", choices=RUNTIMES,
                        help="TextEncoder runtime, here and in the server")
    parser.add_argument("--baseline", default="eager", choices=("", *RUNTIMES),
                        help="a second runtime timed in the same rounds and calls ('' for none)")
    parser.add_argument("--tag", default="", help="results/encode_<tag>.json instead")
    args = parser.parse_args()
    torch.set_num_threads(args.cpu_threads)
    started = machine()
    items = movielens_items(args.data, args.texts)
    texts = [embedding_text(text, attrs) for _, text, attrs in items]
    te = TextEncoder(device="cpu", runtime=args.runtime)
    base = TextEncoder(device="cpu", runtime=args.baseline) if args.baseline else None
    st = SentenceTransformer(default_model_dir(), device="cpu")
    for warm in (te, base):
        if warm is not None:
            warm.warm()
    st.encode(texts[:32], show_progress_bar=False)
    race = embedding_race(te, st, texts, args.rounds, args.single, base)
    enc = encode_interest(te, items, te.embed(texts), args.calls, args.cpu_threads, base)
    rate = race["texts_per_s"]
    rows = [[f"TextEncoder {te.runtime}", rate["text_encoder"], rate["sentence_transformers"],
             round(race["ratio"], 3), ">= 1.5", round(race["cosine_min"], 6),
             race["vectors_agree"]]]
    if base is not None:
        b = race["baseline"]
        rows.append([f"TextEncoder {base.runtime}", rate[f"text_encoder_{base.runtime}"],
                     rate["sentence_transformers"], round(b["ratio_to_st"], 3), "",
                     round(b["cosine_min_vs_ours"], 6), ""])
    print_table(f"catalog embedding, {race['texts']:,} MovieLens texts, batch "
                f"{race['batch_size']} (texts/s, median of {args.rounds} alternating rounds)",
                ["encoder", "texts/s", "sentence-transformers", "ratio", "target", "cos_min",
                 "agree>=0.999"], rows)
    lat = enc["latency"]
    baseline_rows = [] if base is None else [
        [f"gRPC EncodeInterest ({base.runtime} server)",
         lat["grpc_encode_interest_baseline"]["p50_ms"],
         lat["grpc_encode_interest_baseline"]["p99_ms"], ""],
        [f"in-process: embed_both ({base.runtime})",
         lat["in_process_embed_both_baseline"]["p50_ms"],
         lat["in_process_embed_both_baseline"]["p99_ms"], ""]]
    print_table(f"EncodeInterest {SENTENCE!r} ({args.calls} calls, ms)",
                ["what", "p50", "p99", "target"],
                [[f"gRPC EncodeInterest ({te.runtime} server)",
                  lat["grpc_encode_interest"]["p50_ms"],
                  lat["grpc_encode_interest"]["p99_ms"], "p50 <= 15"],
                 *baseline_rows,
                 ["in-process: embed_concepts + embed (two passes)",
                  lat["in_process_concepts"]["p50_ms"], lat["in_process_concepts"]["p99_ms"], ""],
                 ["in-process: embed_both (one pass)", lat["in_process_embed_both"]["p50_ms"],
                  lat["in_process_embed_both"]["p99_ms"], ""],
                 ["in-process: one pass of the sentence", lat["in_process_one_pass"]["p50_ms"],
                  lat["in_process_one_pass"]["p99_ms"], ""]])
    write_result("encode" + (f"_{args.tag}" if args.tag else ""),
                 {"cpu_threads": args.cpu_threads, "runtime": te.runtime,
                  "embedding": race, "encode_interest": enc},
                 started)


if __name__ == "__main__":
    main()
