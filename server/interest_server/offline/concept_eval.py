"""Concept evaluation: stated likes and dislikes scored against item genres, via the live API."""

from __future__ import annotations

import json
import random
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

from tqdm import tqdm

from interest_server.offline.movielens import MovieLens

if TYPE_CHECKING:  # pragma: no cover
    from interest_client import InterestClient

    from interest_server.offline.protocol import Split

K = 10
DEFAULT_PROBES = Path(__file__).resolve().parents[4] / "shared" / "eval" / "concept_probes.json"
# How a user would name each MovieLens genre when ruling it out.
GENRE_PHRASES = {
    "Action": "action movies", "Adventure": "adventure movies", "Animation": "animated movies",
    "Children's": "children's movies", "Comedy": "comedies", "Crime": "crime movies",
    "Documentary": "documentaries", "Drama": "dramas", "Fantasy": "fantasy movies",
    "Film-Noir": "film noir", "Horror": "horror movies", "Musical": "musicals",
    "Mystery": "mystery movies", "Romance": "romance movies", "Sci-Fi": "science fiction",
    "Thriller": "thrillers", "War": "war movies", "Western": "westerns",
}


def load_probes(path: str | None) -> list[dict] | None:
    """The probes file, or None when there is none (concept evaluation is then skipped)."""
    candidate = Path(path) if path else DEFAULT_PROBES
    if not candidate.exists():
        if path:
            raise FileNotFoundError(f"concept probes not found: {candidate}")
        return None
    return json.loads(candidate.read_text())["probes"]


def _genres(data: MovieLens) -> dict[str, set[str]]:
    return {m.item_id: set(m.genres) for m in data.movies}


def probe_results(client: InterestClient, data: MovieLens, probes: list[dict]) -> list[dict]:
    """Per probe: a fresh user states the text, then Recommend(k=10)."""
    genres = _genres(data)
    rows = []
    for n, probe in enumerate(probes):
        user = f"concept-probe-{n}"
        client.delete_user(user)
        encoded = client.encode_interest(user, probe["text"])
        items = [i.item_id for i in client.recommend(user, k=K).items]
        liked = sum(bool(genres[i] & set(probe["like"])) for i in items)
        disliked = sum(bool(genres[i] & set(probe["dislike"])) for i in items)
        rows.append({
            "text": probe["text"], "like": probe["like"], "dislike": probe["dislike"],
            "concepts": [f"{'+' if c.polarity == 1 else '-'}{c.phrase}"
                         + (f" -> {','.join(link.value for link in c.links)}" if c.links else "")
                         for c in encoded.concepts],
            "liked_share": liked / len(items) if probe["like"] and items else None,
            "disliked_items": disliked, "returned": len(items)})
    return rows


def dislike_results(client: InterestClient, data: MovieLens, split: Split,
                    lists_before: dict[str, list[str]], seed: int = 7) -> dict:
    """Each real user adds a dislike of one genre they watched; compare with the list before."""
    genres = _genres(data)
    rng = random.Random(seed)
    in_top = 0
    users_with_violation = 0
    hits_before = hits_after = unaffected = 0
    for user in tqdm(sorted(split.test), desc="concepts: real users", unit="user",
                     mininterval=2):
        watched = Counter(g for x in split.train[user] for g in genres[x.item_id])
        genre = rng.choice(sorted(watched))
        client.encode_interest(user, f"I don't like {GENRE_PHRASES[genre]}")
        after = [i.item_id for i in client.recommend(user, k=K).items]
        violations = sum(genre in genres[i] for i in after)
        in_top += violations
        users_with_violation += violations > 0
        target = split.test[user].item_id
        if genre not in genres[target]:
            unaffected += 1
            hits_before += target in lists_before[user][:K]
            hits_after += target in after
    recall_before = hits_before / unaffected if unaffected else 0.0
    recall_after = hits_after / unaffected if unaffected else 0.0
    return {"users": len(split.test), "disliked_items_in_top10": in_top,
            "users_with_disliked_item": users_with_violation, "unaffected_users": unaffected,
            "recall@10_before": recall_before, "recall@10_after": recall_after,
            "ratio": recall_after / recall_before if recall_before else None}


def evaluate_concepts(client: InterestClient, data: MovieLens, split: Split,
                      probes: list[dict], lists_before: dict[str, list[str]]) -> dict:
    """Both concept evaluations; run last, since they change the users' stated interests."""
    probe_rows = probe_results(client, data, probes)
    with_likes = [r["liked_share"] for r in probe_rows if r["liked_share"] is not None]
    return {
        "probes": probe_rows,
        "probe_mean_liked_share": sum(with_likes) / len(with_likes) if with_likes else None,
        "probe_disliked_items": sum(r["disliked_items"] for r in probe_rows),
        "real_users": dislike_results(client, data, split, lists_before),
    }


def concept_tables(result: dict) -> str:
    """Markdown for the results file."""
    lines = ["| probe | concepts | liked share | disliked items |", "|---|---|---|---|"]
    for r in result["probes"]:
        share = "-" if r["liked_share"] is None else f"{r['liked_share']:.1f}"
        lines.append(f"| {r['text']} | {'; '.join(r['concepts'])} | {share} | "
                     f"{r['disliked_items']} |")
    real = result["real_users"]
    lines += ["", f"Mean liked share over probes with likes: "
              f"{result['probe_mean_liked_share']:.3f}; disliked items over all probes: "
              f"{result['probe_disliked_items']}.", "",
              f"Real users with an added dislike of one watched genre ({real['users']} users): "
              f"{real['disliked_items_in_top10']} disliked-genre items in the top 10 "
              f"({real['users_with_disliked_item']} users affected); Recall@10 on the "
              f"{real['unaffected_users']} users whose test item lacks that genre: "
              f"{real['recall@10_after']:.4f} with the description vs "
              f"{real['recall@10_before']:.4f} without (ratio "
              f"{(real['ratio'] or 0):.3f})."]
    return "\n".join(lines)
