"""Concept evaluation: stated likes and dislikes scored against item genres, via the live API."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from tqdm import tqdm

from interest_server.model.concepts import Polarity
from interest_server.offline.movielens import Interaction, MovieLens
from interest_server.recommend.ranking import REASON_CONCEPT, REASON_RECENT_ITEM

if TYPE_CHECKING:  # pragma: no cover
    from interest_client import InterestClient

    from interest_server.offline.protocol import Split

K = 10
POSITIVE, NEGATIVE = int(Polarity.POSITIVE), int(Polarity.NEGATIVE)
# How a user would name each MovieLens genre when ruling it out.
GENRE_PHRASES = {
    "Action": "action movies", "Adventure": "adventure movies", "Animation": "animated movies",
    "Children's": "children's movies", "Comedy": "comedies", "Crime": "crime movies",
    "Documentary": "documentaries", "Drama": "dramas", "Fantasy": "fantasy movies",
    "Film-Noir": "film noir", "Horror": "horror movies", "Musical": "musicals",
    "Mystery": "mystery movies", "Romance": "romance movies", "Sci-Fi": "science fiction",
    "Thriller": "thrillers", "War": "war movies", "Western": "westerns",
}


def load_probes(path: str | None) -> list[dict]:
    """The probes of a file in the public probes' layout, or by default the 12 public probes as
    the shipped concept dataset holds them (its dev rows "probe-NN")."""
    if path:
        candidate = Path(path)
        if not candidate.exists():
            raise FileNotFoundError(f"concept probes not found: {candidate}")
        return json.loads(candidate.read_text())["probes"]
    from interest_server.offline.concept_dataset import PROBE_PREFIX, load_concept_rows

    return [{"text": r.text, "like": list(r.like), "dislike": list(r.dislike)}
            for r in load_concept_rows(split="dev", catalog="movies")
            if r.id.startswith(PROBE_PREFIX)]


def _genres(data: MovieLens) -> dict[str, set[str]]:
    return {m.item_id: set(m.genres) for m in data.movies}


def concept_links(concepts: Iterable) -> list[tuple[int, tuple[str, ...]]]:
    """(polarity, linked values) of each concept of an EncodeInterest response."""
    return [(int(c.polarity), tuple(link.value for link in c.links)) for c in concepts]


def row_metrics(concepts: Sequence[tuple[int, Sequence[str]]], top: Sequence[set[str]],
                like: Sequence[str], dislike: Sequence[str]) -> dict:
    """How one stated description came out, from its concepts and the labels of its top items.

    `concepts` are (polarity, linked values); `top` holds each returned item's labels (attribute
    values). An inversion is a (concept, value) pair where a positive concept links a disliked
    value or a negative one a liked value; a miss is a labelled value that no concept of the
    right polarity links to.
    """
    liked, disliked = set(like), set(dislike)
    inversions = sum(len(set(values) & (disliked if polarity == POSITIVE else liked))
                     for polarity, values in concepts if polarity in (POSITIVE, NEGATIVE))
    linked = {POSITIVE: set(), NEGATIVE: set()}
    for polarity, values in concepts:
        linked.get(polarity, set()).update(values)
    misses = len(liked - linked[POSITIVE]) + len(disliked - linked[NEGATIVE])
    return {
        "returned": len(top),
        "disliked_items": sum(bool(labels & disliked) for labels in top),
        "liked_share": (sum(bool(labels & liked) for labels in top) / len(top)
                        if liked and top else None),
        "inversions": inversions, "misses": misses,
    }


def concept_strings(concepts: Iterable) -> list[str]:
    """Each concept as "+phrase -> Value,Value" (or "-phrase") for the results files."""
    return [f"{'+' if c.polarity == POSITIVE else '-'}{c.phrase}"
            + (f" -> {','.join(link.value for link in c.links)}" if c.links else "")
            for c in concepts]


def probe_results(client: InterestClient, data: MovieLens, probes: list[dict]) -> list[dict]:
    """Per probe: a fresh user states the text, then Recommend(k=10)."""
    genres = _genres(data)
    rows = []
    for n, probe in enumerate(probes):
        user = f"concept-probe-{n}"
        client.delete_user(user)
        encoded = client.encode_interest(user, probe["text"])
        items = [i.item_id for i in client.recommend(user, k=K).items]
        metrics = row_metrics(concept_links(encoded.concepts), [genres[i] for i in items],
                              probe["like"], probe["dislike"])
        rows.append({"text": probe["text"], "like": probe["like"], "dislike": probe["dislike"],
                     "concepts": concept_strings(encoded.concepts), **metrics})
    return rows


def lowest_rated_genre(history: Iterable[Interaction], genres: Mapping[str, set[str]],
                       catalog_counts: Mapping[str, int]) -> str | None:
    """The genre a user rated lowest on average over `history`; ties go to the genre with the
    fewest catalog items (then the name), so the dislike costs the catalog least. None when no
    rated item has a genre."""
    ratings: dict[str, list[float]] = {}
    for x in history:
        for genre in genres.get(x.item_id, ()):
            ratings.setdefault(genre, []).append(x.rating)
    if not ratings:
        return None
    return min(ratings, key=lambda g: (sum(ratings[g]) / len(ratings[g]),
                                       catalog_counts.get(g, 0), g))


def _has_reason(item: object) -> bool:
    """Whether a returned item's reasons name the concept or the recent item behind it."""
    return any(r.kind in (REASON_CONCEPT, REASON_RECENT_ITEM) and r.text and r.source
               for r in item.reasons)


def dislike_results(client: InterestClient, data: MovieLens, split: Split,
                    lists_before: dict[str, list[str]]) -> dict:
    """The cost of a dislike over all users: each user states "I don't like <the genre they
    rated lowest in training>", and Recall@10 is compared with the list before."""
    genres = _genres(data)
    catalog_counts = Counter(g for m in data.movies for g in m.genres)
    users = sorted(split.test)
    chosen: Counter[str] = Counter()
    in_top = with_violation = no_reason = skipped = 0
    hits_before = hits_after = target_removed = hits_lost_removed = 0
    for user in tqdm(users, desc="concepts: dislike the lowest-rated genre", unit="user",
                     mininterval=2):
        genre = lowest_rated_genre(split.train[user], genres, catalog_counts)
        target = split.test[user].item_id
        before = target in lists_before[user][:K]
        hits_before += before
        if genre is None:  # nothing to dislike: the list stays as it was
            skipped += 1
            hits_after += before
            continue
        chosen[genre] += 1
        client.encode_interest(user, f"I don't like {GENRE_PHRASES[genre]}")
        items = client.recommend(user, k=K).items
        after = [i.item_id for i in items]
        violations = sum(genre in genres[i] for i in after)
        in_top += violations
        with_violation += violations > 0
        no_reason += sum(not _has_reason(i) for i in items)
        hits_after += target in after
        if genre in genres[target]:
            target_removed += 1
            hits_lost_removed += before
    n = len(users)
    return {"users": n, "users_without_genre": skipped,
            "recall@10_before": hits_before / n if n else 0.0,
            "recall@10_after": hits_after / n if n else 0.0,
            "users_test_item_disliked": target_removed,
            "hits_on_disliked_test_items_before": hits_lost_removed,
            "disliked_items_in_top10": in_top, "users_with_disliked_item": with_violation,
            "items_without_reason": no_reason, "disliked_genres": dict(chosen.most_common())}


def evaluate_concepts(client: InterestClient, data: MovieLens, split: Split,
                      probes: list[dict], lists_before: dict[str, list[str]]) -> dict:
    """Both concept evaluations; run last, since they change the users' stated interests."""
    probe_rows = probe_results(client, data, probes)
    with_likes = [r["liked_share"] for r in probe_rows if r["liked_share"] is not None]
    return {
        "probes": probe_rows,
        "probe_mean_liked_share": sum(with_likes) / len(with_likes) if with_likes else None,
        "probe_disliked_items": sum(r["disliked_items"] for r in probe_rows),
        "probe_inversions": sum(r["inversions"] for r in probe_rows),
        "real_users": dislike_results(client, data, split, lists_before),
    }


def dislike_summary(real: dict) -> str:
    """One paragraph on the cost of a dislike (the `real_users` part of the results)."""
    ratio = (real["recall@10_after"] / real["recall@10_before"]
             if real["recall@10_before"] else 0.0)
    return (f"Each of {real['users']} users states \"I don't like <the genre they rated lowest "
            f"in training>\" (ties: the rarest genre in the catalog; "
            f"{real['users_without_genre']} users without one): Recall@10 "
            f"{real['recall@10_after']:.4f} with the dislike vs {real['recall@10_before']:.4f} "
            f"without (ratio {ratio:.3f}); the dislike removes the test item of "
            f"{real['users_test_item_disliked']} users "
            f"({real['hits_on_disliked_test_items_before']} of them were hits before). "
            f"Disliked-genre items left in the top 10: "
            f"{real['disliked_items_in_top10']} (target 0; {real['users_with_disliked_item']} "
            f"users affected). Returned items whose reasons name no concept or recent item: "
            f"{real['items_without_reason']} (target 0).")


def concept_tables(result: dict) -> str:
    """Markdown for the results file."""
    lines = ["| probe | concepts | liked share | disliked items | inversions |",
             "|---|---|---|---|---|"]
    for r in result["probes"]:
        share = "-" if r["liked_share"] is None else f"{r['liked_share']:.1f}"
        lines.append(f"| {r['text']} | {'; '.join(r['concepts'])} | {share} | "
                     f"{r['disliked_items']} | {r['inversions']} |")
    mean = result["probe_mean_liked_share"]
    lines += ["", f"Mean liked share over probes with likes: "
              f"{'-' if mean is None else f'{mean:.3f}'}; disliked items over all probes: "
              f"{result['probe_disliked_items']}; polarity inversions: "
              f"{result['probe_inversions']}.", "", dislike_summary(result["real_users"])]
    return "\n".join(lines)
