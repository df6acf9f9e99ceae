"""A second, non-movie catalog: well-known albums (package data) for the concept evaluation.

It shows that nothing in the concept path is tied to films: albums are shaped like MovieLens
items (an id, a text to embed, a "genre" attribute), with their own 15 genre names. The albums
are factual (title, artist, release year); genres are a coarse 1-3 per album.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

MUSIC_RESOURCE = "demo_data/music.csv"
MUSIC_GENRES: tuple[str, ...] = (
    "Rock", "Pop", "Jazz", "Classical", "Hip-Hop", "Electronic", "Country", "Blues", "Metal",
    "Folk", "Reggae", "R&B", "Punk", "Soul", "Latin",
)
"""The 15 genre names an album may carry."""


@dataclass(frozen=True, slots=True)
class MusicItem:
    """One album: title, artist, a four-digit release year and its genres."""

    item_id: str
    title: str
    artist: str
    year: str
    genres: tuple[str, ...]

    def text(self) -> str:
        """Text to embed, e.g. "Kind of Blue by Miles Davis (1959). Genres: Jazz"."""
        head = f"{self.title} by {self.artist}" if self.artist else self.title
        if self.year:
            head = f"{head} ({self.year})"
        if not self.genres:
            return head
        return f"{head}. Genres: {', '.join(self.genres)}"

    def attributes(self) -> dict[str, list[str]]:
        """Filterable attributes: {"genre": [...], "year": ["1959"]}, empty ones left out."""
        attrs: dict[str, list[str]] = {}
        if self.genres:
            attrs["genre"] = list(self.genres)
        if self.year:
            attrs["year"] = [self.year]
        return attrs


def load_music_catalog(path: str | Path | None = None) -> list[MusicItem]:
    """The albums in file order: the shipped CSV by default, or a file with the same columns."""
    if path is None:
        name = MUSIC_RESOURCE
        text = resources.files(__package__).joinpath(MUSIC_RESOURCE).read_text(encoding="utf-8")
    else:
        name = str(path)
        text = Path(path).read_text(encoding="utf-8")
    reader = csv.DictReader(text.splitlines())
    items: list[MusicItem] = []
    for row in reader:
        genres = tuple(g for g in row["genres"].split("|") if g)
        unknown = [g for g in genres if g not in MUSIC_GENRES]
        if unknown:  # a typo in the data file would otherwise become a genre of its own
            raise ValueError(f"{name}:{reader.line_num}: unknown genre(s) {unknown}")
        items.append(MusicItem(item_id=row["item_id"], title=row["title"], artist=row["artist"],
                               year=row["year"], genres=genres))
    return items
