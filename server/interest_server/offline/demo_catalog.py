"""The shipped demo catalog: well-known films (package data) and generated users with clear tastes.

It lets `interest-server demo` run on a bare clone, with no dataset and no download. The films are
factual (title, year, MovieLens genre names); the ratings are synthetic, drawn from a fixed seed so
every run streams the same events.
"""

from __future__ import annotations

import csv
import random
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from itertools import accumulate

from interest_server.offline.movielens import GROUPLENS_GENRES, Interaction, Movie, MovieLens

FILMS_RESOURCE = "demo_data/films.csv"
GENRES: frozenset[str] = frozenset(GROUPLENS_GENRES[1:])
"""The 18 MovieLens genre names a film may carry ("unknown" is not one)."""


@dataclass(frozen=True, slots=True)
class TasteModel:
    """How the synthetic users are drawn; the defaults give about 17,000 ratings."""

    users: int = 600
    min_ratings: int = 15
    max_ratings: int = 45
    on_taste: float = 0.85
    """Share of a user's ratings drawn from films of their favourite genres."""
    seed: int = 28
    """Picked among the first 40 seeds for a cold-start (most-rated) list that mixes genres."""
    start_s: int = 1_700_000_000
    """First event time (2023-11-14); users' histories spread over the following 90 days."""


def load_films() -> list[Movie]:
    """The shipped films, in file order; ids are "1", "2", ... as written in the file."""
    text = resources.files(__package__).joinpath(FILMS_RESOURCE).read_text(encoding="utf-8")
    reader = csv.DictReader(text.splitlines())
    films: list[Movie] = []
    for row in reader:
        genres = tuple(row["genres"].split("|"))
        unknown = [g for g in genres if g not in GENRES]
        if unknown:  # a typo in the data file would otherwise become a genre of its own
            raise ValueError(f"{FILMS_RESOURCE}:{reader.line_num}: unknown genre(s) {unknown}")
        films.append(Movie(item_id=row["item_id"], title=row["title"], year=row["year"],
                           genres=genres))
    return films


def load_demo_catalog(model: TasteModel | None = None) -> MovieLens:
    """The films plus generated ratings, sorted by time, shaped like a loaded MovieLens."""
    films = load_films()
    return MovieLens(movies=films, interactions=generate_ratings(films, model or TasteModel()),
                     loo=None)


def generate_ratings(films: Sequence[Movie], model: TasteModel) -> list[Interaction]:
    """Each user has one or two favourite genres, rates mostly films of them and rates them high.

    Films get a fixed fame weight (a Zipf-like curve over a seeded shuffle), so some are popular
    across tastes, as in real rating logs.
    """
    rng = random.Random(model.seed)
    order = list(range(len(films)))
    rng.shuffle(order)
    fame = [0.0] * len(films)
    for rank, index in enumerate(order):
        fame[index] = 1.0 / (rank + 10) ** 0.8
    by_genre: dict[str, list[int]] = {}
    for index, film in enumerate(films):
        for genre in film.genres:
            by_genre.setdefault(genre, []).append(index)
    # Tastes follow the catalog: a genre with more films has more fans, but not proportionally more.
    taste_genres = sorted(by_genre)
    taste_weights = [len(by_genre[g]) ** 0.5 for g in taste_genres]
    everything = range(len(films))
    cum_everything = list(accumulate(fame))
    events: list[Interaction] = []
    for user in range(1, model.users + 1):
        favourites = set(rng.choices(taste_genres, taste_weights, k=rng.choice((1, 2))))
        liked_pool = sorted({i for g in favourites for i in by_genre[g]})
        cum_liked = list(accumulate(fame[i] for i in liked_pool))
        # A fan of a small genre (19 Film-Noir films) rates fewer films, not off-taste ones.
        count = min(rng.randint(model.min_ratings, model.max_ratings),
                    int(len(liked_pool) / model.on_taste))
        seen: set[int] = set()
        t = model.start_s + rng.randrange(90 * 86400)
        while len(seen) < count:
            if rng.random() < model.on_taste:
                index = rng.choices(liked_pool, cum_weights=cum_liked)[0]
            else:
                index = rng.choices(everything, cum_weights=cum_everything)[0]
            if index in seen:
                continue
            seen.add(index)
            on_taste = not favourites.isdisjoint(films[index].genres)
            rating = rng.choice((4, 5, 5)) if on_taste else rng.choice((1, 2, 3))
            t += rng.randrange(60, 3600)
            events.append(Interaction(f"fan-{user}", films[index].item_id, float(rating), t))
    events.sort(key=lambda e: e.timestamp)
    return events
