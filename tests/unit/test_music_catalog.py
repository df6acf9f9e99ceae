"""The shipped music catalog, a second non-movie catalog for the concept evaluation (pure logic)."""

from __future__ import annotations

import fnmatch
import tomllib
from collections import Counter
from pathlib import Path

import pytest
from interest_server.offline.music_catalog import (
    MUSIC_GENRES,
    MUSIC_RESOURCE,
    MusicItem,
    load_music_catalog,
)

ROOT = Path(__file__).resolve().parents[2]
HEADER = "item_id,title,artist,year,genres\n"


def test_albums_are_a_few_hundred_with_every_genre_well_represented() -> None:
    albums = load_music_catalog()
    assert len(albums) >= 300
    assert [a.item_id for a in albums] == [f"m{n:04d}" for n in range(1, len(albums) + 1)]
    assert len({(a.title.lower(), a.artist.lower()) for a in albums}) == len(albums)
    assert all(a.title and a.artist for a in albums)
    assert all(a.year.isdigit() and 1900 <= int(a.year) <= 2030 for a in albums)
    assert all(1 <= len(a.genres) <= 3 and len(set(a.genres)) == len(a.genres) for a in albums)
    assert all(set(a.genres) <= set(MUSIC_GENRES) for a in albums)
    counts = Counter(g for a in albums for g in a.genres)
    assert set(counts) == set(MUSIC_GENRES)
    assert min(counts.values()) >= 15, counts
    # No genre swamps the rest, so "no rock" still leaves most of the catalog to recommend.
    assert max(counts.values()) <= 0.3 * len(albums), counts


def test_an_album_is_shaped_like_a_movielens_item() -> None:
    albums = load_music_catalog()
    kind_of_blue = albums[0]
    assert kind_of_blue.text() == "Kind of Blue by Miles Davis (1959). Genres: Jazz"
    assert kind_of_blue.attributes() == {"genre": ["Jazz"], "year": ["1959"]}
    for album in albums:
        text = album.text()
        assert album.title in text and album.artist in text, text
        assert text.endswith(f"Genres: {', '.join(album.genres)}"), text
        assert album.attributes()["genre"] == list(album.genres)


def test_a_path_loads_another_file_and_a_misspelt_genre_is_refused(tmp_path: Path) -> None:
    good = tmp_path / "albums.csv"
    good.write_text(HEADER + 'x1,"Blue, Live",Someone,1999,Jazz|Blues\n', encoding="utf-8")
    assert load_music_catalog(good) == [
        MusicItem("x1", "Blue, Live", "Someone", "1999", ("Jazz", "Blues"))]
    bad = tmp_path / "typo.csv"
    bad.write_text(HEADER + "x1,Blue,Someone,1999,Jazz|Hiphop\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"typo\.csv:2: unknown genre\(s\) \['Hiphop'\]"):
        load_music_catalog(str(bad))


def test_the_albums_file_is_installed_as_package_data() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = config["tool"]["setuptools"]["package-data"]["interest_server.offline"]
    assert any(fnmatch.fnmatch(MUSIC_RESOURCE, p) for p in patterns), patterns
    assert (ROOT / "server" / "interest_server" / "offline" / MUSIC_RESOURCE).is_file()
