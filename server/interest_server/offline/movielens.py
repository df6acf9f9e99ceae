"""MovieLens-100K loaders for RecBole atomic files and the GroupLens originals (u.item, u.data)."""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from operator import itemgetter
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from interest_server.offline.event_source import TrainingInput

ATOMIC_ITEM = "ml-100k.item"
ATOMIC_INTER = "ml-100k.inter"
LOO_SPLIT = "loo_split.tsv"
GROUPLENS_ITEM = "u.item"
GROUPLENS_DATA = "u.data"
DATASET_SUBDIR = "ml-100k"

GROUPLENS_GENRES: tuple[str, ...] = (
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
)
"""The 19 genre flag columns of u.item, in file order."""

_NO_GENRE = "unknown"
_YEAR = re.compile(r"^\d{4}$")
_TITLE_YEAR = re.compile(r"^(?P<title>.*?)\s*\((?P<year>\d{4})\)\s*$")
_DATE_YEAR = re.compile(r"(\d{4})\s*$")


@dataclass(frozen=True, slots=True)
class Movie:
    """One catalog item: title without the year, a four-digit year or "", and its genres."""

    item_id: str
    title: str
    year: str
    genres: tuple[str, ...]

    def text(self) -> str:
        """Text to embed, e.g. "Toy Story (1995). Genres: Animation, Children's, Comedy"."""
        head = f"{self.title} ({self.year})" if self.year else self.title
        if not self.genres:
            return head
        return f"{head}. Genres: {', '.join(self.genres)}"

    def attributes(self) -> dict[str, list[str]]:
        """Filterable attributes: {"genre": [...], "year": ["1995"]}, empty ones left out."""
        attrs: dict[str, list[str]] = {}
        if self.genres:
            attrs["genre"] = list(self.genres)
        if self.year:
            attrs["year"] = [self.year]
        return attrs


@dataclass(frozen=True, slots=True)
class Interaction:
    """One rating event; timestamp in whole seconds since the epoch."""

    user_id: str
    item_id: str
    rating: float
    timestamp: int


@dataclass(frozen=True, slots=True)
class LooTarget:
    """Leave-one-out targets of one user: the first n_train events train, then valid, then test."""

    user_id: str
    n_train: int
    valid_item_id: str
    test_item_id: str


@dataclass
class MovieLens:
    """A loaded dataset; `loo` is None when no loo_split.tsv sits beside the data."""

    movies: list[Movie]
    interactions: list[Interaction]
    loo: dict[str, LooTarget] | None


def default_data_dir() -> Path:
    """The shared ml-100k beside the repository (../shared/datasets/ml-100k) or data/ml-100k."""
    repo_root = Path(__file__).resolve().parents[3]
    shared = repo_root.parent / "shared" / "datasets" / DATASET_SUBDIR
    if shared.is_dir():
        return shared
    return Path("data") / DATASET_SUBDIR


def load_movielens(path: str | Path) -> MovieLens:
    """Load MovieLens-100K from a directory of RecBole atomic files or GroupLens originals.

    `path` is the directory holding ml-100k.item + ml-100k.inter (preferred when both formats are
    present) or u.item + u.data, or its parent when that has an ml-100k/ subdirectory. A
    loo_split.tsv in the same directory is loaded into `loo`.
    """
    root = Path(path)
    for directory in (root, root / DATASET_SUBDIR):
        if _has(directory, ATOMIC_ITEM, ATOMIC_INTER):
            return MovieLens(
                movies=_read_atomic_items(directory / ATOMIC_ITEM),
                interactions=_read_atomic_inters(directory / ATOMIC_INTER),
                loo=_read_loo_if_present(directory / LOO_SPLIT),
            )
        if _has(directory, GROUPLENS_ITEM, GROUPLENS_DATA):
            return MovieLens(
                movies=_read_grouplens_items(directory / GROUPLENS_ITEM),
                interactions=_read_grouplens_data(directory / GROUPLENS_DATA),
                loo=_read_loo_if_present(directory / LOO_SPLIT),
            )
    raise FileNotFoundError(
        f"no MovieLens-100K data under {root}: looked for {ATOMIC_ITEM} + {ATOMIC_INTER} "
        f"(RecBole atomic) or {GROUPLENS_ITEM} + {GROUPLENS_DATA} (GroupLens) in {root} "
        f"and in {root / DATASET_SUBDIR}"
    )


def user_sequences(interactions: Iterable[Interaction]) -> dict[str, list[Interaction]]:
    """Group by user, each list sorted by timestamp; ties keep their input order (stable sort)."""
    by_user: dict[str, list[Interaction]] = {}
    for event in interactions:
        by_user.setdefault(event.user_id, []).append(event)
    for events in by_user.values():
        events.sort(key=lambda e: e.timestamp)
    return by_user


def item_text(movie: Movie) -> str:
    """Exactly the text the server embeds for a MovieLens item upserted with its attributes."""
    from interest_server.recommend.item_index import embedding_text

    attrs = {k: tuple(v) for k, v in movie.attributes().items()}
    return embedding_text(movie.text(), attrs)


def training_input(data: MovieLens) -> TrainingInput:
    """The adapter to the trainer's generic input: each rating an event (type rating, value
    the rating, time in ms), each film its text, and the published split file's targets."""
    from interest_server.events import EventType
    from interest_server.offline.event_source import ItemCatalog, TrainEvent, TrainingInput

    events = [TrainEvent(i.user_id, i.item_id, i.timestamp * 1000, EventType.RATING, i.rating)
              for i in data.interactions]
    catalog = ItemCatalog([m.item_id for m in data.movies], [item_text(m) for m in data.movies])
    targets = ({u: (t.valid_item_id, t.test_item_id, t.n_train) for u, t in data.loo.items()}
               if data.loo else None)
    return TrainingInput(events, catalog, "MovieLens-100K ratings", targets)


def export_generic(data: MovieLens, events_path: str | Path, catalog_path: str | Path) -> None:
    """Write the dataset in the generic layouts: events as CSV with a header (user_id,
    item_id, type, value, timestamp_ms) and the catalog as upsert-items JSONL."""
    import json

    with Path(events_path).open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["user_id", "item_id", "type", "value", "timestamp_ms"])
        for i in data.interactions:
            writer.writerow([i.user_id, i.item_id, "rating", i.rating, i.timestamp * 1000])
    with Path(catalog_path).open("w", encoding="utf-8") as handle:
        for m in data.movies:
            handle.write(json.dumps({"item_id": m.item_id, "text": m.text(),
                                     "attributes": m.attributes()}) + "\n")


def _has(directory: Path, *names: str) -> bool:
    return all((directory / name).is_file() for name in names)


def _normalise_year(raw: str) -> str:
    year = raw.strip()
    return year if _YEAR.match(year) else ""


def _genre_tuple(names: Iterable[str]) -> tuple[str, ...]:
    return tuple(name for name in names if name and name != _NO_GENRE)


def _read_table(path: Path, required: tuple[str, ...]) -> Iterator[tuple[str, ...]]:
    """Yield the values of `required`, in that order, from each row of a tab-separated file.

    Columns are found by header name; a RecBole type suffix ("item_id:token") is dropped. Blank
    lines are skipped and short rows padded with "".
    """
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
        header = next(reader, None)
        if header is None:
            raise ValueError(f"{path}: empty file, expected a header row")
        names = [column.split(":", 1)[0].strip() for column in header]
        missing = [name for name in required if name not in names]
        if missing:
            raise ValueError(f"{path}: header lacks column(s) {missing}; found {names}")
        index = [names.index(name) for name in required]
        pick = itemgetter(*index) if len(index) > 1 else lambda row: (row[index[0]],)
        width = max(index) + 1
        for row in reader:
            if len(row) < width:
                if not "".join(row).strip():
                    continue
                row += [""] * (width - len(row))
            yield pick(row)


def _read_atomic_items(path: Path) -> list[Movie]:
    columns = ("item_id", "movie_title", "release_year", "class")
    return [
        Movie(
            item_id=item_id.strip(),
            title=title.strip(),
            year=_normalise_year(year),
            genres=_genre_tuple(genres.split()),
        )
        for item_id, title, year, genres in _read_table(path, columns)
    ]


def _read_atomic_inters(path: Path) -> list[Interaction]:
    columns = ("user_id", "item_id", "rating", "timestamp")
    interactions: list[Interaction] = []
    append = interactions.append
    for user_id, item_id, rating, timestamp in _read_table(path, columns):
        append(_interaction(path, user_id, item_id, rating, timestamp))
    return interactions


def _read_loo_if_present(path: Path) -> dict[str, LooTarget] | None:
    if not path.is_file():
        return None
    columns = ("user_id", "n_train", "valid_item_id", "test_item_id")
    loo: dict[str, LooTarget] = {}
    for user_id, n_train, valid_item_id, test_item_id in _read_table(path, columns):
        try:
            count = int(n_train)
        except ValueError as exc:
            raise ValueError(f"{path}: bad n_train {n_train!r} for user {user_id!r}") from exc
        loo[user_id.strip()] = LooTarget(
            user_id=user_id.strip(),
            n_train=count,
            valid_item_id=valid_item_id.strip(),
            test_item_id=test_item_id.strip(),
        )
    return loo


def _read_grouplens_items(path: Path) -> list[Movie]:
    movies: list[Movie] = []
    n_fields = 5 + len(GROUPLENS_GENRES)
    with path.open(encoding="latin-1", newline="") as handle:
        reader = csv.reader(handle, delimiter="|", quoting=csv.QUOTE_NONE)
        for row in reader:
            if len(row) < n_fields and not "".join(row).strip():
                continue
            if len(row) < n_fields:
                raise ValueError(
                    f"{path}:{reader.line_num}: expected {n_fields} '|'-separated fields, "
                    f"got {len(row)}"
                )
            title, year = _split_title_year(row[1], row[2])
            flags = row[5:n_fields]
            genres = _genre_tuple(
                name for name, flag in zip(GROUPLENS_GENRES, flags, strict=True) if flag == "1"
            )
            movies.append(Movie(item_id=row[0].strip(), title=title, year=year, genres=genres))
    return movies


def _split_title_year(raw_title: str, release_date: str) -> tuple[str, str]:
    """Split "Toy Story (1995)" into ("Toy Story", "1995"); else use the release date's year."""
    title = raw_title.strip()
    match = _TITLE_YEAR.match(title)
    if match:
        return match["title"], match["year"]
    date_match = _DATE_YEAR.search(release_date)
    return title, date_match.group(1) if date_match else ""


def _read_grouplens_data(path: Path) -> list[Interaction]:
    interactions: list[Interaction] = []
    with path.open(encoding="latin-1", newline="") as handle:
        reader = csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
        for row in reader:
            if len(row) < 4 and not "".join(row).strip():
                continue
            if len(row) < 4:
                raise ValueError(
                    f"{path}:{reader.line_num}: expected user, item, rating, timestamp; got {row}"
                )
            interactions.append(_interaction(path, row[0], row[1], row[2], row[3]))
    return interactions


def _interaction(
    path: Path, user_id: str, item_id: str, rating: str, timestamp: str
) -> Interaction:
    try:
        return Interaction(user_id.strip(), item_id.strip(), float(rating), _seconds(timestamp))
    except ValueError as exc:
        raise ValueError(
            f"{path}: bad rating {rating!r} or timestamp {timestamp!r} "
            f"(user {user_id!r}, item {item_id!r})"
        ) from exc


def _seconds(raw: str) -> int:
    """Whole seconds from "881250949" or RecBole's float form "881250949.0"."""
    try:
        return int(raw)
    except ValueError:
        return int(float(raw))
