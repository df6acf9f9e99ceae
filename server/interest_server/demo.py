"""The demo: a server on MovieLens-100K, a user's events streaming in, then stated interests."""

from __future__ import annotations

import logging
import tempfile
import time
from pathlib import Path

from interest_client import InterestClient
from tqdm import tqdm

from .app import create_server
from .config import Settings
from .movielens import MovieLens, default_data_dir, load_movielens

log = logging.getLogger(__name__)

DEMO_USER = "demo-user"
# Star Wars, The Empire Strikes Back, Return of the Jedi, Alien, The Terminator, Aliens.
SCI_FI_LIKES = ["50", "172", "181", "183", "195", "176"]
DESCRIPTION = "I love mystery films, I hate romance"
LIKED_GENRE, DISLIKED_GENRE = "Mystery", "Romance"


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


def _stream_background(client: InterestClient, data: MovieLens, count: int) -> None:
    events = ({"event_id": f"ml-{i}", "user_id": f"ml-{x.user_id}", "item_id": x.item_id,
               "type": "rating", "value": x.rating, "timestamp_ms": x.timestamp * 1000}
              for i, x in enumerate(data.interactions[:count]))
    applied = 0
    with tqdm(total=min(count, len(data.interactions)), desc="streaming other users' events",
              unit="event") as bar:
        for ack in client.stream_events(events, batch_size=500):
            applied += ack.status == 1
            bar.update(1)
    print(f"{applied} background events applied")


def run_demo(settings: Settings, data_path: str | None, background_events: int) -> int:
    """Play the scenario; returns 0 when the final list obeys the stated interests."""
    path = Path(data_path) if data_path else default_data_dir()
    data = load_movielens(path)
    print(f"MovieLens from {path}: {len(data.movies)} movies, {len(data.interactions)} ratings")
    with tempfile.TemporaryDirectory(prefix="interest-demo-") as tmp:
        if not settings.redis_url:
            settings = settings.replace(data_dir=Path(tmp) / "redis")
        running = create_server(settings)
        try:
            with InterestClient(running.target, timeout_s=120) as client:
                client.wait_ready()
                return _scenario(client, data, background_events)
        finally:
            running.stop(grace_s=1.0)


def _scenario(client: InterestClient, data: MovieLens, background_events: int) -> int:
    _load_catalog(client, data)
    if background_events:
        _stream_background(client, data, background_events)
    client.delete_user(DEMO_USER)

    _print_list(f"1. {DEMO_USER} is new: popular items", client.recommend(DEMO_USER, k=10))

    titles = {m.item_id: m.title for m in data.movies}
    now = int(time.time() * 1000)
    for n, item_id in enumerate(SCI_FI_LIKES):
        ack = client.ingest([{"event_id": f"demo-like-{item_id}", "user_id": DEMO_USER,
                              "item_id": item_id, "type": "like", "timestamp_ms": now + n}])
        print(f"event: {DEMO_USER} likes {titles[item_id]!r} -> "
              f"{'APPLIED' if ack.applied else 'DUPLICATE' if ack.duplicates else 'REJECTED'} "
              f"(version {ack.acks[0].user_version})")
        if n in (0, len(SCI_FI_LIKES) - 1):
            _print_list(f"2.{n + 1} after liking {titles[item_id]!r}",
                        client.recommend(DEMO_USER, k=10))

    encoded = client.encode_interest(DEMO_USER, DESCRIPTION)
    print(f"\n{DEMO_USER} says: {DESCRIPTION!r}")
    for c in encoded.concepts:
        polarity = "likes" if c.polarity == 1 else "dislikes"
        links = ", ".join(f"{link.name} = {link.value} ({link.similarity:.2f})"
                          for link in c.links) or "no attribute; embedding similarity"
        print(f"  concept: {polarity} {c.phrase!r} (weight {c.weight:.2f}) -> {links}")
    final = client.recommend(DEMO_USER, k=10)
    _print_list("3. after the description", final)

    romance = [i.item_id for i in final.items if DISLIKED_GENRE in _genres(i)]
    mystery = [i.item_id for i in final.items if LIKED_GENRE in _genres(i)]
    print(f"\ncheck: {len(mystery)}/10 {LIKED_GENRE} items, {len(romance)} {DISLIKED_GENRE} items")
    if romance or len(mystery) < len(final.items) // 2:
        print("FAILED: the list does not follow the stated interests")
        return 1
    print("OK: the list turned to mystery and holds no romance")
    return 0
