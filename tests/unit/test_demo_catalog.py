"""The shipped demo catalog, the demo's catalog choice and its checks (pure logic, no server)."""

from __future__ import annotations

import fnmatch
import itertools
import tomllib
from collections import Counter, defaultdict
from pathlib import Path
from types import SimpleNamespace

import pytest
from interest_server.offline import demo
from interest_server.offline.demo_catalog import (
    FILMS_RESOURCE,
    GENRES,
    TasteModel,
    generate_ratings,
    load_demo_catalog,
    load_films,
)
from interest_server.offline.movielens import Interaction, Movie, MovieLens

ROOT = Path(__file__).resolve().parents[2]


def test_films_are_a_few_hundred_with_the_genres_the_scenario_needs() -> None:
    films = load_films()
    assert len(films) >= 250
    assert [f.item_id for f in films] == [str(n) for n in range(1, len(films) + 1)]
    assert len({(f.title.lower(), f.year) for f in films}) == len(films)
    assert all(f.year.isdigit() and 1900 <= int(f.year) <= 2030 for f in films)
    assert all(f.genres and set(f.genres) <= GENRES for f in films)
    counts = Counter(g for f in films for g in f.genres)
    assert counts["Mystery"] >= 25 and counts["Romance"] >= 25 and counts["Sci-Fi"] >= 25
    assert set(counts) == GENRES  # every MovieLens genre is represented
    # Shaped as MovieLens items are, so the server sees both catalogs alike.
    star_wars = films[0]
    assert star_wars.text() == "Star Wars (1977). Genres: Action, Adventure, Sci-Fi"
    assert star_wars.attributes() == {"genre": ["Action", "Adventure", "Sci-Fi"],
                                      "year": ["1977"]}


def test_the_films_file_is_installed_as_package_data() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = config["tool"]["setuptools"]["package-data"]["interest_server.offline"]
    assert any(fnmatch.fnmatch(FILMS_RESOURCE, p) for p in patterns), patterns


def test_generated_users_have_clear_tastes() -> None:
    films = load_films()
    genres = {f.item_id: set(f.genres) for f in films}
    model = TasteModel()
    events = generate_ratings(films, model)
    assert events == generate_ratings(films, model)  # a fixed seed: the same events every run
    assert events != generate_ratings(films, TasteModel(seed=model.seed + 1))
    assert [e.timestamp for e in events] == sorted(e.timestamp for e in events)
    by_user: dict[str, list[Interaction]] = defaultdict(list)
    for e in events:
        by_user[e.user_id].append(e)
    assert len(by_user) == model.users
    assert sum(e.rating >= 4 for e in events) >= 0.75 * len(events)
    taste_sets = [frozenset(c) for n in (1, 2) for c in itertools.combinations(sorted(GENRES), n)]
    for user, rated in by_user.items():
        assert model.min_ratings <= len(rated) <= model.max_ratings, user
        assert len({e.item_id for e in rated}) == len(rated), user
        high = [genres[e.item_id] for e in rated if e.rating >= 4]
        low = [genres[e.item_id] for e in rated if e.rating < 4]
        assert len(high) >= len(rated) // 2, user
        # One or two genres explain every rating: high exactly when the film has one of them.
        assert any(all(g & taste for g in high) and not any(g & taste for g in low)
                   for taste in taste_sets), user


def _movielens(movies: list[Movie], rated: dict[str, int] | None = None) -> MovieLens:
    events = [Interaction("u", item_id, 5.0, n)
              for item_id, count in (rated or {}).items() for n in range(count)]
    return MovieLens(movies=movies, interactions=events, loo=None)


def test_likes_are_picked_by_title_from_either_catalog() -> None:
    shipped = demo.pick_likes(load_demo_catalog())
    assert [(m.title, m.year) for m in shipped] == demo.SCI_FI_LIKES
    # MovieLens writes "Empire Strikes Back, The"; other ids, same films.
    ml = _movielens([Movie("50", "Star Wars", "1977", ("Sci-Fi",)),
                     Movie("172", "Empire Strikes Back, The", "1980", ("Sci-Fi",)),
                     Movie("181", "Return of the Jedi", "1983", ("Sci-Fi",)),
                     Movie("183", "Alien", "1979", ("Sci-Fi",)),
                     Movie("195", "Terminator, The", "1984", ("Sci-Fi",)),
                     Movie("176", "Aliens", "1986", ("Sci-Fi",)),
                     Movie("9", "Alien", "1992", ("Sci-Fi",))])
    assert [m.item_id for m in demo.pick_likes(ml)] == ["50", "172", "181", "183", "195", "176"]


def test_missing_likes_are_replaced_by_the_most_rated_sci_fi() -> None:
    data = _movielens([Movie("1", "Star Wars", "1977", ("Sci-Fi",)),
                       Movie("2", "Solaris", "1972", ("Sci-Fi",)),
                       Movie("3", "Casablanca", "1942", ("Romance",)),
                       Movie("4", "Stalker", "1979", ("Sci-Fi",))],
                      rated={"2": 1, "3": 9, "4": 3})
    assert [m.item_id for m in demo.pick_likes(data)] == ["1", "4", "2"]


def test_catalog_choice(tmp_path: Path) -> None:
    assert demo.choose_catalog("demo", None).description.startswith(
        "catalog: the shipped demo catalog, ")
    missing = tmp_path / "nothing-here"
    with pytest.raises(demo.CatalogError, match="no MovieLens-100K data under"):
        demo.choose_catalog("auto", str(missing))
    with pytest.raises(demo.CatalogError, match="--data names a MovieLens-100K directory"):
        demo.choose_catalog("demo", str(missing))


def _resp(*genre_lists: list[str]) -> SimpleNamespace:
    """A stand-in RecommendResponse: items with a genre attribute (the checks read no more)."""
    return SimpleNamespace(items=[
        SimpleNamespace(attributes=[SimpleNamespace(name="genre", values=g)]) for g in genre_lists])


@pytest.mark.parametrize(("before", "after", "holds"), [
    (_resp(["Drama"]) , _resp(["Sci-Fi"], ["Sci-Fi", "War"], ["Drama"]), True),
    (_resp(["Drama"]), _resp(["Sci-Fi"], ["Drama"], ["Drama"]), False),  # under half
    (_resp(["Sci-Fi"], ["Sci-Fi"]), _resp(["Sci-Fi"], ["Sci-Fi"]), False),  # did not move
    (_resp(["Drama"]), _resp(), False),  # an empty list follows nothing
])
def test_likes_check(before: SimpleNamespace, after: SimpleNamespace, holds: bool) -> None:
    assert demo._check_likes(before, after) is holds


@pytest.mark.parametrize(("final", "holds"), [
    (_resp(["Mystery"], ["Mystery", "Sci-Fi"], ["Drama"]), True),
    (_resp(["Mystery"], ["Mystery", "Romance"], ["Drama"]), False),  # one disliked item
    (_resp(["Mystery"], ["Drama"], ["Drama"]), False),  # under half Mystery
    (_resp(), False),
])
def test_description_check(final: SimpleNamespace, holds: bool) -> None:
    assert demo._check_description(final) is holds
