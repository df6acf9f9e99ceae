"""Recommend on MovieLens-100K for realism: the real catalog, embedded by the server's own model,
real users' rating histories streamed in, stated concepts grounded on the real genres.

Each sampled user exists three times: `h` (the rating history only), `d` (the same history plus
"I hate romance") and `p` (the same history plus "I love mystery films"). Latency of the three
`Recommend` variants is measured call by call against an exact FAISS `IndexFlatIP` search of
the same item vectors with the user's interest vector, and every list is checked against an
exact score computed here over the whole catalog (recall@10): FAISS for `h`; FAISS with Romance
items removed for `d`; for `p` behaviour + the boosted concept (ranking.py) from the concept
vector and weight the server stored in Redis and the genres it grounded the phrase on. The
catalog (1,682 items) is far below the server's scanner threshold: the exact fp32 path runs.
"""

from __future__ import annotations

import argparse
import random
import time
from typing import Any

import faiss
import numpy as np
import redis
from _common import (
    ServerProcess,
    boosted_scores,
    machine,
    print_table,
    private_redis,
    stats_ms,
    thread_env,
    value_masks,
    write_result,
)
from interest_client import InterestClient
from interest_server.offline.movielens import MovieLens, default_data_dir, load_movielens
from interest_server.state.catalog import CatalogStore
from threadpoolctl import threadpool_limits

K = 10
DISLIKE, DISLIKED_GENRE = "I hate romance", "Romance"
LIKE, LIKED_GENRE = "I love mystery films", "Mystery"
VARIANTS = ("h", "d", "p")


def load_catalog(client: InterestClient, data: MovieLens) -> float:
    """Upsert every movie through the server (it embeds the texts); seconds taken."""
    t0 = time.perf_counter()
    client.upsert_items([{"item_id": m.item_id, "text": m.text(), "attributes": m.attributes()}
                         for m in data.movies], batch_size=128)
    return time.perf_counter() - t0


def sample_users(data: MovieLens, users: int, min_ratings: int, seed: int
                 ) -> dict[str, list[Any]]:
    """`users` users with at least `min_ratings` ratings, each history oldest first."""
    by_user: dict[str, list[Any]] = {}
    for x in data.interactions:
        by_user.setdefault(x.user_id, []).append(x)
    eligible = sorted(u for u, h in by_user.items() if len(h) >= min_ratings)
    picked = random.Random(seed).sample(eligible, min(users, len(eligible)))
    return {u: sorted(by_user[u], key=lambda x: x.timestamp) for u in picked}


def stream_histories(client: InterestClient, histories: dict[str, list[Any]]) -> int:
    """Every history as rating events, once per variant; returns the events applied."""
    events = ({"event_id": f"{v}-{u}-{n}", "user_id": f"{v}{u}", "item_id": x.item_id,
               "type": "rating", "value": x.rating, "timestamp_ms": x.timestamp * 1000}
              for u, history in histories.items() for v in VARIANTS
              for n, x in enumerate(history))
    return sum(ack.status == 1 for ack in client.stream_events(events, batch_size=200))


def catalog_vectors(rclient: redis.Redis) -> tuple[list[str], np.ndarray, list[set[str]]]:
    """(item ids, their stored vectors, their genres) as the server holds them."""
    ids, vectors, genres = [], [], []
    for chunk in CatalogStore(rclient, stream_maxlen=100_000).iter_all():
        for item in chunk:
            ids.append(item.item_id)
            vectors.append(item.vector)
            genres.append(set(item.attributes.get("genre", ())))
    return ids, np.ascontiguousarray(np.stack(vectors), dtype=np.float32), genres


def exact_lists(client: InterestClient, rclient: redis.Redis, user: str, consumed: set[str],
                index: faiss.Index, ids: list[str], vectors: np.ndarray, genres: list[set[str]]
                ) -> tuple[np.ndarray, dict[str, list[str]]]:
    """(the interest vector of `h<user>`, the exact top K of each variant, `consumed` (every
    item the user rated) removed)."""
    state = client.get_user_state(f"h{user}", include_vector=True)
    if state.consumed_count != len(consumed):
        raise RuntimeError(f"user {user}: the server counts {state.consumed_count} consumed "
                           f"items, the history has {len(consumed)}")
    query = np.asarray(state.interest_vector, dtype=np.float32)
    _, found = index.search(query[None, :], len(ids))
    ranked = [ids[i] for i in found[0] if i >= 0]
    row = {item_id: n for n, item_id in enumerate(ids)}
    plain = [i for i in ranked if i not in consumed]
    disliked = [i for i in plain if DISLIKED_GENRE not in genres[row[i]]]
    boosted = boosted_scores(client, rclient, f"p{user}", vectors, query,
                             value_masks(len(ids), genres.__getitem__))
    liked = [ids[i] for i in np.argsort(-boosted, kind="stable") if ids[i] not in consumed]
    return query, {"h": plain[:K], "d": disliked[:K], "p": liked[:K]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", default=str(default_data_dir()), help="ml-100k directory")
    parser.add_argument("--users", type=int, default=30, help="MovieLens users sampled")
    parser.add_argument("--min-ratings", type=int, default=20)
    parser.add_argument("--requests", type=int, default=300, help="timed calls per variant")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tag", default="", help="results/recommend_movielens_<tag>.json")
    args = parser.parse_args()
    started = machine()
    data = load_movielens(args.data)
    histories = sample_users(data, args.users, args.min_ratings, args.seed)
    out: dict[str, Any] = {"data": args.data, "movies": len(data.movies),
                           "users": len(histories), "dislike_text": DISLIKE, "like_text": LIKE}
    with private_redis(persist=False) as (redis_server, rclient), \
            ServerProcess("real", redis_server.url, env=thread_env(1)) as server, \
            server.client(timeout_s=120) as client, threadpool_limits(1):
        faiss.omp_set_num_threads(1)
        out["embed_catalog_s"] = load_catalog(client, data)
        out["events_applied"] = stream_histories(client, histories)
        for u in histories:
            client.encode_interest(f"d{u}", DISLIKE)
            client.encode_interest(f"p{u}", LIKE)
        out["concepts"] = [f"{c.phrase} -> {[f'{x.name}={x.value}' for x in c.links]}"
                           for v in ("d", "p")
                           for c in client.get_user_state(f"{v}{next(iter(histories))}")
                           .concepts]
        ids, vectors, genres = catalog_vectors(rclient)
        index = faiss.IndexFlatIP(vectors.shape[1])
        index.add(vectors)
        exact = {u: exact_lists(client, rclient, u, {x.item_id for x in history}, index, ids,
                                vectors, genres)
                 for u, history in histories.items()}
        users = list(histories)
        samples: dict[str, list[float]] = {"h": [], "d": [], "p": [], "faiss": []}
        recall: dict[str, list[float]] = {v: [] for v in VARIANTS}
        off_genre: dict[str, int] = {"d": 0, "p": 0}
        row = {item_id: n for n, item_id in enumerate(ids)}
        for r in range(args.requests + 10):
            u = users[r % len(users)]
            query, want = exact[u]
            for v in VARIANTS:
                t0 = time.perf_counter()
                resp = client.recommend(f"{v}{u}", k=K)
                dt = time.perf_counter() - t0
                got = [i.item_id for i in resp.items]
                if r < len(users):  # each user's lists checked once
                    # (a tiny catalog can hold fewer than K unconsumed items)
                    recall[v].append(len(set(got) & set(want[v])) / max(1, len(want[v])))
                    if v == "d":
                        off_genre["d"] += sum(DISLIKED_GENRE in genres[row[i]] for i in got)
                    if v == "p":
                        off_genre["p"] += sum(LIKED_GENRE not in genres[row[i]] for i in got)
                if r >= 10:
                    samples[v].append(dt)
            t0 = time.perf_counter()
            index.search(query[None, :], K + 50)
            if r >= 10:
                samples["faiss"].append(time.perf_counter() - t0)
        out["latency"] = {k: stats_ms(v) for k, v in samples.items()}
        out["recall_at_10_vs_exact"] = {v: {"mean": round(float(np.mean(x)), 4),
                                            "min": float(np.min(x)), "n": len(x)}
                                        for v, x in recall.items()}
        out["romance_in_dislike_lists"] = off_genre["d"]
        out["non_mystery_in_liked_lists"] = off_genre["p"]
    lat, rec = out["latency"], out["recall_at_10_vs_exact"]
    print_table(f"Recommend k={K} on MovieLens-100K ({out['movies']:,} movies embedded by the "
                f"server in {out['embed_catalog_s']:.1f} s, {out['users']} users, "
                f"{out['events_applied']:,} rating events applied; ms)",
                ["variant", "p50", "p99", "recall@10", "min recall", "check"],
                [["history", lat["h"]["p50_ms"], lat["h"]["p99_ms"], rec["h"]["mean"],
                  rec["h"]["min"], ""],
                 [f"+ {DISLIKE!r}", lat["d"]["p50_ms"], lat["d"]["p99_ms"], rec["d"]["mean"],
                  rec["d"]["min"], f"{off_genre['d']} {DISLIKED_GENRE} listed"],
                 [f"+ {LIKE!r}", lat["p"]["p50_ms"], lat["p"]["p99_ms"], rec["p"]["mean"],
                  rec["p"]["min"], f"{off_genre['p']} of {K * len(users)} not {LIKED_GENRE}"],
                 ["FAISS flat, same vector", lat["faiss"]["p50_ms"], lat["faiss"]["p99_ms"],
                  "", "", ""]])
    print(f"concepts: {out['concepts']}")
    write_result("recommend_movielens" + (f"_{args.tag}" if args.tag else ""), out, started)


if __name__ == "__main__":
    main()
