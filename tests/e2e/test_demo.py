"""The README's demo, end to end: real server process, embedded Redis, real model, real gRPC."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from interest_server.movielens import GROUPLENS_GENRES

ROOT = Path(__file__).resolve().parents[2]
SHARED_ML100K = ROOT.parent / "shared" / "datasets" / "ml-100k"

# The demo's liked items (MovieLens ids) plus mystery, romance and other titles around them.
SYNTHETIC = [
    ("50", "Star Wars (1977)", ["Action", "Adventure", "Romance", "Sci-Fi", "War"]),
    ("172", "Empire Strikes Back, The (1980)", ["Action", "Adventure", "Drama", "Romance",
                                                 "Sci-Fi", "War"]),
    ("181", "Return of the Jedi (1983)", ["Action", "Adventure", "Romance", "Sci-Fi", "War"]),
    ("183", "Alien (1979)", ["Action", "Horror", "Sci-Fi", "Thriller"]),
    ("195", "Terminator, The (1984)", ["Action", "Sci-Fi", "Thriller"]),
    ("176", "Aliens (1986)", ["Action", "Sci-Fi", "Thriller", "War"]),
    ("1", "Blade Runner (1982)", ["Film-Noir", "Sci-Fi"]),
    ("2", "Star Trek: The Wrath of Khan (1982)", ["Action", "Adventure", "Sci-Fi"]),
    ("3", "Stalker (1979)", ["Mystery", "Sci-Fi"]),
    ("4", "Vertigo (1958)", ["Mystery", "Thriller"]),
    ("5", "Rear Window (1954)", ["Mystery", "Thriller"]),
    ("6", "Gaslight (1944)", ["Mystery", "Thriller"]),
    ("7", "Chinatown (1974)", ["Film-Noir", "Mystery", "Thriller"]),
    ("8", "Usual Suspects, The (1995)", ["Crime", "Mystery", "Thriller"]),
    ("9", "Murder on the Orient Express (1974)", ["Crime", "Mystery"]),
    ("10", "Maltese Falcon, The (1941)", ["Film-Noir", "Mystery"]),
    ("11", "Event Horizon (1997)", ["Action", "Mystery", "Sci-Fi", "Thriller"]),
    ("12", "Big Lebowski, The (1998)", ["Comedy", "Crime", "Mystery", "Thriller"]),
    ("13", "Sleepless in Seattle (1993)", ["Comedy", "Romance"]),
    ("14", "Pretty Woman (1990)", ["Comedy", "Romance"]),
    ("15", "Titanic (1997)", ["Action", "Drama", "Romance"]),
    ("16", "Somewhere in Time (1980)", ["Drama", "Romance", "Sci-Fi"]),
    ("17", "Starman (1984)", ["Adventure", "Drama", "Romance", "Sci-Fi"]),
    ("18", "Casablanca (1942)", ["Drama", "Romance", "War"]),
    ("19", "Toy Story (1995)", ["Animation", "Children's", "Comedy"]),
    ("20", "Fargo (1996)", ["Crime", "Drama", "Thriller"]),
]


def write_grouplens(directory: Path) -> None:
    """A tiny MovieLens in the GroupLens format (u.item, u.data)."""
    directory.mkdir(parents=True)
    with (directory / "u.item").open("w", encoding="latin-1") as f:
        for item_id, title, genres in SYNTHETIC:
            flags = "|".join("1" if g in genres else "0" for g in GROUPLENS_GENRES)
            f.write(f"{item_id}|{title}|01-Jan-1995||http://example.invalid|{flags}\n")
    with (directory / "u.data").open("w") as f:
        for n in range(300):
            item_id = SYNTHETIC[(n * 7) % len(SYNTHETIC)][0]
            f.write(f"{100 + n % 17}\t{item_id}\t{1 + n % 5}\t{880000000 + n}\n")


@pytest.mark.parametrize("dataset", ["synthetic", "movielens"])
def test_demo_scenario(dataset: str, tmp_path: Path) -> None:
    if dataset == "movielens":
        if not (SHARED_ML100K / "ml-100k.item").exists():
            pytest.skip("../shared/datasets/ml-100k is not present")
        data = SHARED_ML100K
    else:
        data = tmp_path / "ml"
        write_grouplens(data)
    proc = subprocess.run(
        [sys.executable, "-m", "interest_server.cli", "demo", "--port", "0", "--data",
         str(data), "--background-events", "3000", "--log-level", "WARNING"],
        capture_output=True, text=True, timeout=600, cwd=tmp_path,
        env=dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1"))
    out = proc.stdout
    assert proc.returncode == 0, out[-4000:] + proc.stderr[-4000:]
    assert "OK: the list turned to mystery and holds no romance" in out
    final = out.split("== 3. after the description", 1)[1]
    rows = [line for line in final.splitlines() if line[:3].strip().isdigit()]
    assert len(rows) == 10 if dataset == "movielens" else len(rows) >= 5
    assert not any("Romance" in row for row in rows), final
    assert all("Mystery" in row for row in rows[:5]), final
    # The behaviour stage changed the list before the description did.
    stage1 = out.split("== 1.", 1)[1].split("== 2.1", 1)[0]
    stage2 = out.split("== 2.6", 1)[1].split("== 3.", 1)[0]
    assert stage1 != stage2 and "because you liked" in stage2
