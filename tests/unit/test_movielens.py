"""Unit tests for the MovieLens-100K loaders (RecBole atomic and GroupLens formats)."""

from __future__ import annotations

from pathlib import Path

import pytest
from interest_server.offline.movielens import (
    Interaction,
    LooTarget,
    Movie,
    MovieLens,
    default_data_dir,
    load_movielens,
    user_sequences,
)

REAL_DATA = Path(__file__).resolve().parents[2].parent / "shared/datasets/ml-100k"

# Columns deliberately out of RecBole's usual order: the loader must go by header names.
ATOMIC_ITEM = (
    "movie_title:token_seq\titem_id:token\tclass:token_seq\trelease_year:token\n"
    "Toy Story\t1\tAnimation Children's Comedy\t1995\n"
    "Misérables, Les\t2\tDrama Musical\t1995\n"
    "Big Sleep, The\t3\tFilm-Noir Mystery\t\n"
    "unkonwn\t4\tunknown\tunkonwn\n"
)
ATOMIC_INTER = (
    "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
    "10\t3\t4\t300\n"
    "10\t1\t5\t100\n"
    "20\t2\t3.5\t881250949.0\n"
    "10\t2\t2\t100\n"
    "10\t4\t1\t50\n"
    "\n"
)
LOO = (
    "user_id\tn_train\tvalid_item_id\ttest_item_id\tvalid_item_exact_ts\ttest_item_exact_ts\n"
    "10\t2\t2\t3\t2\t3\n"
)
ATOMIC_USER = (
    "user_id:token\tage:token\tgender:token\toccupation:token\tzip_code:token\n10\t24\tM\tx\t1\n"
)


def _flags(*genres: str) -> str:
    order = [
        "unknown",
        "Action",
        "Adventure",
        "Animation",
        "Children's",
        "Comedy",
        "Crime",
        "Documentary",
        "Drama",
        "Fantasy",
        "Film-Noir",
        "Horror",
        "Musical",
        "Mystery",
        "Romance",
        "Sci-Fi",
        "Thriller",
        "War",
        "Western",
    ]
    assert all(genre in order for genre in genres)
    return "|".join("1" if name in genres else "0" for name in order)


GROUPLENS_ITEM = (
    "\n".join(
        [
            "1|Toy Story (1995)|01-Jan-1995||http://us.imdb.com/M/title-exact?Toy%20Story%20(1995)|"
            + _flags("Animation", "Children's", "Comedy"),
            "2|Misérables, Les (1995)|01-Jan-1995||http://x|" + _flags("Drama", "Musical"),
            "3|Big Sleep, The|||http://x|" + _flags("Film-Noir", "Mystery"),
            "4|unknown|||http://x|" + _flags("unknown"),
            "5|Shanghai Triad (Yao a yao yao dao waipo qiao) (1995)|01-Jan-1995||http://x|"
            + _flags("Drama"),
            "6|Nénette et Boni|29-Apr-1997||http://x|" + _flags("Drama"),
        ]
    )
    + "\n"
)
GROUPLENS_DATA = "10\t3\t4\t300\n10\t1\t5\t100\n20\t2\t3\t881250949\n10\t2\t2\t100\n10\t4\t1\t50\n"


def _write_atomic(directory: Path, *, loo: bool = True, user: bool = True) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "ml-100k.item").write_text(ATOMIC_ITEM, encoding="utf-8")
    (directory / "ml-100k.inter").write_text(ATOMIC_INTER, encoding="utf-8")
    if loo:
        (directory / "loo_split.tsv").write_text(LOO, encoding="utf-8")
    if user:
        (directory / "ml-100k.user").write_text(ATOMIC_USER, encoding="utf-8")
    return directory


def _write_grouplens(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    raw = GROUPLENS_ITEM.encode("latin-1")
    assert b"Mis\xe9rables" in raw  # latin-1 bytes, not valid UTF-8, as GroupLens ships it
    (directory / "u.item").write_bytes(raw)
    (directory / "u.data").write_text(GROUPLENS_DATA, encoding="ascii")
    return directory


def _by_id(data: MovieLens) -> dict[str, Movie]:
    return {movie.item_id: movie for movie in data.movies}


def test_atomic_movies_parsed_by_header_name(tmp_path: Path) -> None:
    data = load_movielens(_write_atomic(tmp_path / "ml-100k"))
    assert [m.item_id for m in data.movies] == ["1", "2", "3", "4"]
    movies = _by_id(data)
    assert movies["1"] == Movie("1", "Toy Story", "1995", ("Animation", "Children's", "Comedy"))
    assert movies["2"] == Movie("2", "Misérables, Les", "1995", ("Drama", "Musical"))
    assert movies["3"] == Movie("3", "Big Sleep, The", "", ("Film-Noir", "Mystery"))
    # RecBole's placeholder row: "unknown" genre means none, a non-numeric year means none.
    assert movies["4"] == Movie("4", "unkonwn", "", ())


def test_atomic_interactions_keep_file_order_and_types(tmp_path: Path) -> None:
    data = load_movielens(_write_atomic(tmp_path))
    assert data.interactions == [
        Interaction("10", "3", 4.0, 300),
        Interaction("10", "1", 5.0, 100),
        Interaction("20", "2", 3.5, 881250949),
        Interaction("10", "2", 2.0, 100),
        Interaction("10", "4", 1.0, 50),
    ]
    assert all(isinstance(event.timestamp, int) for event in data.interactions)
    assert all(isinstance(event.rating, float) for event in data.interactions)


def test_atomic_loo_split(tmp_path: Path) -> None:
    data = load_movielens(_write_atomic(tmp_path))
    assert data.loo == {"10": LooTarget("10", 2, "2", "3")}


def test_loo_is_none_without_split_file(tmp_path: Path) -> None:
    data = load_movielens(_write_atomic(tmp_path, loo=False, user=False))
    assert data.loo is None
    assert len(data.movies) == 4


def test_grouplens_movies_latin1_title_year_and_genres(tmp_path: Path) -> None:
    data = load_movielens(_write_grouplens(tmp_path))
    movies = _by_id(data)
    assert movies["1"] == Movie("1", "Toy Story", "1995", ("Animation", "Children's", "Comedy"))
    assert movies["2"] == Movie("2", "Misérables, Les", "1995", ("Drama", "Musical"))
    assert movies["3"] == Movie("3", "Big Sleep, The", "", ("Film-Noir", "Mystery"))
    assert movies["4"] == Movie("4", "unknown", "", ())
    assert movies["5"].title == "Shanghai Triad (Yao a yao yao dao waipo qiao)"
    assert movies["5"].year == "1995"
    # No "(year)" in the title: the year comes from the release date.
    assert movies["6"] == Movie("6", "Nénette et Boni", "1997", ("Drama",))
    assert data.loo is None


def test_grouplens_interactions(tmp_path: Path) -> None:
    data = load_movielens(_write_grouplens(tmp_path))
    assert data.interactions[0] == Interaction("10", "3", 4.0, 300)
    assert data.interactions[2] == Interaction("20", "2", 3.0, 881250949)
    assert len(data.interactions) == 5


def test_both_formats_give_the_same_interactions(tmp_path: Path) -> None:
    atomic = load_movielens(_write_atomic(tmp_path / "a"))
    grouplens = load_movielens(_write_grouplens(tmp_path / "g"))
    assert [(e.user_id, e.item_id, e.timestamp) for e in atomic.interactions] == [
        (e.user_id, e.item_id, e.timestamp) for e in grouplens.interactions
    ]


def test_movie_text_and_attributes() -> None:
    toy = Movie("1", "Toy Story", "1995", ("Animation", "Children's", "Comedy"))
    assert toy.text() == "Toy Story (1995). Genres: Animation, Children's, Comedy"
    assert toy.attributes() == {"genre": ["Animation", "Children's", "Comedy"], "year": ["1995"]}

    no_year = Movie("3", "Big Sleep, The", "", ("Film-Noir",))
    assert no_year.text() == "Big Sleep, The. Genres: Film-Noir"
    assert no_year.attributes() == {"genre": ["Film-Noir"]}

    no_genre = Movie("4", "Good Morning", "1971", ())
    assert no_genre.text() == "Good Morning (1971)"
    assert no_genre.attributes() == {"year": ["1971"]}

    bare = Movie("5", "unknown", "", ())
    assert bare.text() == "unknown"
    assert bare.attributes() == {}


def test_detects_parent_directory_with_ml_100k(tmp_path: Path) -> None:
    _write_atomic(tmp_path / "ml-100k")
    assert len(load_movielens(tmp_path).movies) == 4
    assert len(load_movielens(str(tmp_path)).interactions) == 5


def test_detects_grouplens_in_parent_directory(tmp_path: Path) -> None:
    _write_grouplens(tmp_path / "ml-100k")
    assert _by_id(load_movielens(tmp_path))["4"].title == "unknown"


def test_prefers_atomic_when_both_formats_present(tmp_path: Path) -> None:
    _write_atomic(tmp_path)
    _write_grouplens(tmp_path)
    data = load_movielens(tmp_path)
    assert len(data.movies) == 4  # the atomic file has 4 movies, u.item has 6
    assert data.loo is not None


def test_missing_directory_names_files_looked_for(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError) as info:
        load_movielens(tmp_path / "nowhere")
    message = str(info.value)
    for name in ("ml-100k.item", "ml-100k.inter", "u.item", "u.data", "nowhere"):
        assert name in message


def test_incomplete_directory_is_not_found(tmp_path: Path) -> None:
    (tmp_path / "ml-100k.item").write_text(ATOMIC_ITEM, encoding="utf-8")
    (tmp_path / "u.data").write_text(GROUPLENS_DATA, encoding="ascii")
    with pytest.raises(FileNotFoundError):
        load_movielens(tmp_path)


def test_missing_header_column_is_a_clear_error(tmp_path: Path) -> None:
    _write_atomic(tmp_path)
    (tmp_path / "ml-100k.inter").write_text("user_id:token\titem_id:token\n1\t2\n", "utf-8")
    with pytest.raises(ValueError, match="rating"):
        load_movielens(tmp_path)


def test_user_sequences_sorted_and_stable_on_ties() -> None:
    events = [
        Interaction("10", "3", 4.0, 300),
        Interaction("10", "1", 5.0, 100),
        Interaction("20", "2", 3.0, 7),
        Interaction("10", "2", 2.0, 100),
        Interaction("10", "4", 1.0, 50),
    ]
    sequences = user_sequences(events)
    assert list(sequences) == ["10", "20"]
    # Items 1 and 2 share timestamp 100: file order (1 before 2) is kept.
    assert [e.item_id for e in sequences["10"]] == ["4", "1", "2", "3"]
    assert [e.item_id for e in sequences["20"]] == ["2"]
    assert [e.item_id for e in events] == ["3", "1", "2", "2", "4"]  # input left untouched


def test_user_sequences_accepts_an_iterator() -> None:
    sequences = user_sequences(iter([Interaction("1", "a", 1.0, 2), Interaction("1", "b", 1.0, 1)]))
    assert [e.item_id for e in sequences["1"]] == ["b", "a"]


def test_default_data_dir_returns_a_path() -> None:
    path = default_data_dir()
    assert isinstance(path, Path)
    if REAL_DATA.is_dir():
        assert path.resolve() == REAL_DATA.resolve()
    else:
        assert path == Path("data/ml-100k")


def test_real_ml_100k() -> None:
    if not (REAL_DATA / "ml-100k.inter").is_file():
        pytest.skip(f"MovieLens-100K not found at {REAL_DATA}")
    data = load_movielens(REAL_DATA)
    assert len(data.movies) == 1682
    assert len({m.item_id for m in data.movies}) == 1682
    assert len(data.interactions) == 100_000
    users = {event.user_id for event in data.interactions}
    assert len(users) == 943
    assert data.loo is not None
    assert set(data.loo) == users
    movies = _by_id(data)
    assert movies["1"].text() == "Toy Story (1995). Genres: Animation, Children's, Comedy"
    genres = {genre for movie in data.movies for genre in movie.genres}
    assert {"Film-Noir", "Children's", "Sci-Fi"} <= genres
    assert "unknown" not in genres
    assert len(genres) == 18
    # Every user's sequence is n_train events, then the validation item, then the test item.
    sequences = user_sequences(data.interactions)
    for user_id, target in data.loo.items():
        assert len(sequences[user_id]) == target.n_train + 2
