"""The demo: a server on a film catalog, a user's events, stated interests (English, Chinese)."""

from __future__ import annotations

import json
import logging
import re
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from interest_client import InterestClient
from tqdm import tqdm

from interest_server.api.app import create_server
from interest_server.config import Settings
from interest_server.offline.demo_catalog import load_demo_catalog
from interest_server.offline.movielens import Movie, MovieLens, default_data_dir, load_movielens

log = logging.getLogger(__name__)

DEMO_USER = "demo-user"
CATALOGS = ("auto", "demo", "movielens")
"""--catalog: auto takes MovieLens-100K where found, else the shipped demo catalog."""
# Liked by (title, year) so the same films are picked from whichever catalog is loaded.
SCI_FI_LIKES = [("Star Wars", "1977"), ("The Empire Strikes Back", "1980"),
                ("Return of the Jedi", "1983"), ("Alien", "1979"), ("The Terminator", "1984"),
                ("Aliens", "1986")]
LIKES_GENRE = "Sci-Fi"
DESCRIPTION = "I love mystery films, I hate romance"
LIKED_GENRE, DISLIKED_GENRE = "Mystery", "Romance"
CHINESE_DESCRIPTION = "喜欢悬疑电影，讨厌爱情电影"
"""The same wishes in Chinese ("love mystery films, hate romance films"): the default encoder is
English, so the genres are found through the shipped synonyms."""
SYNONYMS_FILE = Path(__file__).resolve().parents[3] / "examples" / "movielens" / "synonyms.json"
"""The MovieLens genre names in Chinese and French, in the repository beside the package (a
source checkout; an installed wheel has no examples/ and the demo skips that step)."""
_ARTICLE_SUFFIX = re.compile(r"^(?P<rest>.*), (?P<article>the|a|an)$")


class CatalogError(Exception):
    """No usable catalog for the given flags; the message says what to do."""


@dataclass(frozen=True, slots=True)
class Catalog:
    """The loaded films and ratings, with a one-line description of where they came from."""

    data: MovieLens
    description: str
    user_prefix: str


def choose_catalog(catalog: str, data_path: str | None) -> Catalog:
    """--data DIR, else MovieLens-100K where default_data_dir() finds it, else the shipped one."""
    if catalog not in CATALOGS:
        raise CatalogError(f"--catalog must be one of {', '.join(CATALOGS)}, not {catalog!r}")
    if data_path and catalog == "demo":
        raise CatalogError("--data names a MovieLens-100K directory; drop it or --catalog demo")
    if catalog != "demo":
        path = Path(data_path) if data_path else default_data_dir()
        try:
            data = load_movielens(path)
        except FileNotFoundError as exc:
            if data_path or catalog == "movielens":
                raise CatalogError(str(exc)) from exc
        else:
            return Catalog(data, f"catalog: MovieLens-100K from {path}: {len(data.movies)} "
                                 f"movies, {len(data.interactions)} ratings", "ml-")
    data = load_demo_catalog()
    users = len({x.user_id for x in data.interactions})
    hint = ("" if catalog == "demo" else
            "; no MovieLens-100K at ../shared/datasets/ml-100k or ./data/ml-100k")
    return Catalog(data, f"catalog: the shipped demo catalog, {len(data.movies)} films and "
                         f"{len(data.interactions)} generated ratings of {users} users{hint} "
                         f"(to use MovieLens-100K: --data DIR)", "")


def pick_likes(data: MovieLens, wanted: list[tuple[str, str]] = SCI_FI_LIKES) -> list[Movie]:
    """The wanted films found by title and year; missing ones replaced by the most-rated Sci-Fi."""
    by_key = {(_title_key(m.title), m.year): m for m in data.movies}
    picked = [by_key[key] for t, y in wanted if (key := (_title_key(t), y)) in by_key]
    if len(picked) < len(wanted):
        ratings = Counter(x.item_id for x in data.interactions)
        others = sorted((m for m in data.movies if LIKES_GENRE in m.genres and m not in picked),
                        key=lambda m: -ratings[m.item_id])
        picked += others[:len(wanted) - len(picked)]
    return picked


def _title_key(title: str) -> str:
    """One key for MovieLens' "Empire Strikes Back, The" and "The Empire Strikes Back"."""
    key = title.strip().lower()
    match = _ARTICLE_SUFFIX.match(key)
    return f"{match['article']} {match['rest']}" if match else key


def _print_list(title: str, resp) -> None:  # noqa: ANN001 - a RecommendResponse
    print(f"\n== {title}  (strategy: {resp.strategy}, user version {resp.user_version}, "
          f"removed by dislikes: {resp.removed_by_dislikes}, consumed: {resp.removed_consumed})")
    print(f"{'#':>2}  {'item':>5}  {'score':>6}  {'title':<36}  {'genres':<44}  why")
    for rank, item in enumerate(resp.items, 1):
        why = item.reasons[0].text if item.reasons else ""
        title = item.text.split(". Genres:", 1)[0][:36]
        genres = ",".join(sorted(_genres(item)))[:44]
        print(f"{rank:>2}  {item.item_id:>5}  {item.score:6.3f}  {title:<36}  {genres:<44}  {why}")


def _genres(item) -> set[str]:  # noqa: ANN001 - a ScoredItem
    return {v for a in item.attributes if a.name == "genre" for v in a.values}


def _load_catalog(client: InterestClient, data: MovieLens) -> None:
    items = [{"item_id": m.item_id, "text": m.text(), "attributes": m.attributes()}
             for m in data.movies]
    batch = 128
    with tqdm(total=len(items), desc="embedding + storing catalog", unit="item") as bar:
        for start in range(0, len(items), batch):
            client.upsert_items(items[start:start + batch])
            bar.update(len(items[start:start + batch]))


def _stream_background(client: InterestClient, catalog: Catalog, count: int) -> None:
    data, prefix = catalog.data, catalog.user_prefix
    events = ({"event_id": f"bg-{i}", "user_id": f"{prefix}{x.user_id}", "item_id": x.item_id,
               "type": "rating", "value": x.rating, "timestamp_ms": x.timestamp * 1000}
              for i, x in enumerate(data.interactions[:count]))
    applied = 0
    with tqdm(total=min(count, len(data.interactions)), desc="streaming other users' events",
              unit="event") as bar:
        for ack in client.stream_events(events, batch_size=500):
            applied += ack.status == 1
            bar.update(1)
    print(f"{applied} background events applied")


def run_demo(settings: Settings, data_path: str | None, background_events: int,
             catalog: str = "auto") -> int:
    """Play the scenario; returns 0 when every check holds, 1 when one fails, 2 on bad flags."""
    try:
        chosen = choose_catalog(catalog, data_path)
    except CatalogError as exc:
        print(f"interest-server demo: {exc}", file=sys.stderr)
        return 2
    print(chosen.description)
    with tempfile.TemporaryDirectory(prefix="interest-demo-") as tmp:
        if not settings.redis_url:
            settings = settings.replace(data_dir=Path(tmp) / "redis")
        running = create_server(settings)
        try:
            with InterestClient(running.target, timeout_s=120) as client:
                client.wait_ready()
                return _scenario(client, chosen, background_events)
        finally:
            running.stop(grace_s=1.0)


def _scenario(client: InterestClient, catalog: Catalog, background_events: int) -> int:
    data = catalog.data
    _load_catalog(client, data)
    if background_events:
        _stream_background(client, catalog, background_events)
    client.delete_user(DEMO_USER)

    popular = client.recommend(DEMO_USER, k=10)
    _print_list(f"1. {DEMO_USER} is new: popular items", popular)

    likes = pick_likes(data)
    now = int(time.time() * 1000)
    after_likes = popular
    for n, movie in enumerate(likes):
        ack = client.ingest([{"event_id": f"demo-like-{movie.item_id}", "user_id": DEMO_USER,
                              "item_id": movie.item_id, "type": "like", "timestamp_ms": now + n}])
        print(f"event: {DEMO_USER} likes {movie.title!r} -> "
              f"{'APPLIED' if ack.applied else 'DUPLICATE' if ack.duplicates else 'REJECTED'} "
              f"(version {ack.acks[0].user_version})")
        if n in (0, len(likes) - 1):
            after_likes = client.recommend(DEMO_USER, k=10)
            _print_list(f"2.{n + 1} after liking {movie.title!r}", after_likes)

    encoded = client.encode_interest(DEMO_USER, DESCRIPTION)
    print(f"\n{DEMO_USER} says: {DESCRIPTION!r}")
    _print_concepts(encoded)
    final = client.recommend(DEMO_USER, k=10)
    _print_list("3. after the description", final)

    print()
    followed = _check_likes(popular, after_likes)
    stated = _check_description(final)
    chinese = _chinese_step(client)
    return 0 if followed and stated and chinese else 1


def _chinese_step(client: InterestClient) -> bool:
    """Load the genre synonyms, restate the wishes in Chinese (REPLACE), check the list."""
    if not SYNONYMS_FILE.is_file():
        print(f"\nskipped the Chinese step: no {SYNONYMS_FILE} (a source checkout has it)")
        return True
    written = client.set_attribute_synonyms(
        json.loads(SYNONYMS_FILE.read_text(encoding="utf-8")))
    print(f"\nsynonyms: {written.stored} genre lists ({written.total_synonyms} synonyms, "
          f"Chinese and French) from {SYNONYMS_FILE.parent.name}/{SYNONYMS_FILE.name}")
    encoded = client.encode_interest(DEMO_USER, CHINESE_DESCRIPTION, mode="replace")
    print(f"{DEMO_USER} says: {CHINESE_DESCRIPTION!r} (replacing the description above)")
    _print_concepts(encoded)
    final = client.recommend(DEMO_USER, k=10)
    _print_list("4. after the description in Chinese", final)
    print()
    return _check_description(final, "in Chinese")


def _print_concepts(encoded) -> None:  # noqa: ANN001 - an EncodeInterestResponse
    for c in encoded.concepts:
        polarity = "likes" if c.polarity == 1 else "dislikes"
        links = ", ".join(f"{link.name} = {link.value} ({link.similarity:.2f})"
                          for link in c.links) or "no attribute; embedding similarity"
        print(f"  concept: {polarity} {c.phrase!r} (weight {c.weight:.2f}) -> {links}")


def _count(resp, genre: str) -> int:  # noqa: ANN001 - a RecommendResponse
    return sum(genre in _genres(item) for item in resp.items)


def _check_likes(popular, after_likes) -> bool:  # noqa: ANN001 - RecommendResponses
    """The list followed the liked films: at least half is their genre, more than before."""
    before, after = _count(popular, LIKES_GENRE), _count(after_likes, LIKES_GENRE)
    n = len(after_likes.items)
    print(f"check: after the likes {after}/{n} {LIKES_GENRE} items "
          f"(the popular list had {before}/{len(popular.items)})")
    if n == 0 or 2 * after < n or after <= before:
        print(f"FAILED: the list did not follow the liked films towards {LIKES_GENRE}")
        return False
    print(f"OK: the list followed the liked films towards {LIKES_GENRE}")
    return True


def _check_description(final, said: str = "") -> bool:  # noqa: ANN001 - a RecommendResponse
    """The stated interests hold: no disliked-genre item, at least half of the liked genre."""
    disliked, liked = _count(final, DISLIKED_GENRE), _count(final, LIKED_GENRE)
    n = len(final.items)
    suffix = f" ({said})" if said else ""
    print(f"check{suffix}: {liked}/{n} {LIKED_GENRE} items, {disliked} {DISLIKED_GENRE} items")
    if n == 0 or disliked or 2 * liked < n:
        print(f"FAILED{suffix}: the list does not follow the stated interests")
        return False
    print(f"OK{suffix}: the list turned to mystery and holds no romance")
    return True
