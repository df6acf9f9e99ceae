"""`interest-server eval-concepts` and the cost of a dislike in `interest-server eval`, each on a
tiny catalog through a real server, real model and real Redis."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from statistics import mean

import pytest
import redis
from interest_server import cli
from interest_server.offline.concept_eval import GENRE_PHRASES
from interest_server.offline.movielens import GROUPLENS_GENRES, load_movielens
from interest_server.offline.protocol import leave_one_out

from tests.e2e.test_demo import write_grouplens

from .conftest import GENRES, MOVIES

SENTENCE = "I love mystery films, I hate romance"
ROWS = [
    {"id": "t-right", "lang": "en", "text": SENTENCE, "like": ["Mystery"],
     "dislike": ["Romance"]},
    # Labelled the wrong way round on purpose: both concepts are then inversions.
    {"id": "t-wrong", "lang": "en", "text": SENTENCE, "like": ["Romance"],
     "dislike": ["Mystery"]},
    {"id": "t-zh", "lang": "zh", "text": "喜欢悬疑电影，讨厌爱情电影", "like": ["Mystery"],
     "dislike": ["Romance"]},
    {"id": "t-music", "lang": "en", "catalog": "music", "text": "no jazz", "like": [],
     "dislike": ["Jazz"]},
]


def write_catalog(directory: Path) -> None:
    """The integration tests' 30 films in the GroupLens format (no ratings are needed)."""
    directory.mkdir()
    with (directory / "u.item").open("w", encoding="latin-1") as f:
        for item_id, title, genres in MOVIES:
            flags = "|".join("1" if g in genres else "0" for g in GROUPLENS_GENRES)
            f.write(f"{item_id}|{title}|01-Jan-1995||http://example.invalid|{flags}\n")
    (directory / "u.data").write_text("1\t1\t5\t880000000\n")


def write_rows(path: Path) -> None:
    lines = [json.dumps({"catalog": "movies", "split": "dev", "spans": [], **r},
                        ensure_ascii=False) for r in ROWS]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def eval_concepts(tmp_path: Path, out: Path, *extra: str) -> dict:
    code = cli.main(["eval-concepts", "--split", "dev", "--data", str(tmp_path / "ml"),
                     "--rows", str(tmp_path / "rows.jsonl"), "--out", str(out),
                     "--concept-extractor", "rules", "--log-level", "WARNING", *extra])
    assert code == 0
    return json.loads((out / "concept_eval_movies_dev.json").read_text(encoding="utf-8"))


def test_eval_concepts_scores_rows_through_the_server(tmp_path: Path, redis_server: str,
                                                      redis_client: redis.Redis,
                                                      capsys: pytest.CaptureFixture) -> None:
    write_catalog(tmp_path / "ml")
    write_rows(tmp_path / "rows.jsonl")
    synonyms = tmp_path / "synonyms.json"
    synonyms.write_text(json.dumps({"genre": {"Mystery": ["悬疑"], "Romance": ["爱情"]}}))
    result = eval_concepts(tmp_path, tmp_path / "out", "--redis-url", redis_server,
                           "--synonyms", str(synonyms))
    assert (result["items"], result["concept_extractor"]) == (len(MOVIES), "rules")
    rows = {r["id"]: r for r in result["rows"]}
    assert list(rows) == ["t-right", "t-wrong", "t-zh"]  # the music row is another catalog's
    for r in rows.values():  # every count agrees with the genres of the returned items
        assert len(r["items"]) == r["returned"] == 10
        assert r["disliked_items"] == sum(bool(GENRES[i] & set(r["dislike"])) for i in r["items"])
        assert r["liked_share"] == sum(bool(GENRES[i] & set(r["like"]))
                                       for i in r["items"]) / 10
    right, wrong, zh = rows["t-right"], rows["t-wrong"], rows["t-zh"]
    assert right["concepts"] == ["+mystery films -> Mystery", "-romance -> Romance"]
    assert (right["disliked_items"], right["inversions"], right["misses"]) == (0, 0, 0)
    assert right["liked_share"] >= 0.5
    # The same lists judged against the swapped labels: Mystery items are now "disliked".
    assert wrong["items"] == right["items"]
    assert (wrong["inversions"], wrong["misses"], wrong["liked_share"]) == (2, 2, 0.0)
    assert wrong["disliked_items"] == round(10 * right["liked_share"])
    # The Chinese phrases reach the genres only through the synonyms sent by SetAttributeSynonyms.
    assert (zh["disliked_items"], zh["inversions"], zh["misses"]) == (0, 0, 0)
    assert redis_client.keys("*synonyms*")

    summary = result["summary"]
    assert list(summary) == ["overall", "English", "non-English", "lang=en", "lang=zh"]
    assert (summary["overall"]["rows"], summary["overall"]["lists_with_disliked"],
            summary["overall"]["inversions"]) == (3, 1, 2)
    assert summary["non-English"]["inversions"] == 0
    assert summary["English"]["misses"] == 2
    out = tmp_path / "out"
    assert (out / "concept_eval_movies_dev.md").is_file()
    printed = capsys.readouterr().out
    assert "| **target** | - | 0 | 0 | >= 0.9 | 0 | - |" in printed
    assert f"| overall | 3 | 1 | {summary['overall']['disliked_items']} |" in printed

    # Without synonyms (and on an embedded Redis) the Chinese row links no genre.
    bare = eval_concepts(tmp_path, tmp_path / "bare", "--synonyms", "none")
    zh_bare = {r["id"]: r for r in bare["rows"]}["t-zh"]
    assert zh_bare["misses"] == 2 and bare["synonyms"] is None


def test_eval_reports_the_cost_of_disliking_the_lowest_rated_genre(tmp_path: Path) -> None:
    data = tmp_path / "ml"
    write_grouplens(data)
    probes = tmp_path / "probes.json"
    probes.write_text(json.dumps({"probes": [{"text": SENTENCE, "like": ["Mystery"],
                                              "dislike": ["Romance"]}]}))
    out = tmp_path / "out"
    assert cli.main(["eval", "--data", str(data), "--probes", str(probes), "--out", str(out),
                     "--concept-extractor", "rules", "--log-level", "WARNING"]) == 0
    result = json.loads((out / "replay_eval.json").read_text())
    concepts = result["concepts"]["decayed average (this server)"]
    assert concepts["probe_disliked_items"] == 0 and concepts["probe_inversions"] == 0
    real = concepts["real_users"]

    # The same choice made here from the data: each user's lowest-rated training genre.
    loaded = load_movielens(data)
    split = leave_one_out(loaded)
    genres = {m.item_id: set(m.genres) for m in loaded.movies}
    counts = Counter(g for m in loaded.movies for g in m.genres)
    chosen = {}
    for u in split.test:  # written out again here, so a changed rule in the code shows
        by_genre: dict[str, list[float]] = {}
        for x in split.train[u]:
            for g in genres[x.item_id]:
                by_genre.setdefault(g, []).append(x.rating)
        chosen[u] = sorted(by_genre, key=lambda g: (mean(by_genre[g]), counts[g], g))[0]
    assert all(g in GENRE_PHRASES for g in chosen.values())
    assert real["users"] == len(split.test) == 17 and real["users_without_genre"] == 0
    assert real["disliked_genres"] == dict(Counter(chosen.values()))
    assert real["users_test_item_disliked"] == sum(
        chosen[u] in genres[split.test[u].item_id] for u in split.test)
    assert real["disliked_items_in_top10"] == 0 and real["users_with_disliked_item"] == 0
    assert real["items_without_reason"] == 0
    # "Before" is the replay's own test list, cut at 10.
    assert real["recall@10_before"] == result["test"]["decayed average (this server)"][
        "recall@10"]
    assert 0.0 <= real["recall@10_after"] <= 1.0
    assert "rated lowest in training" in (out / "replay_eval.md").read_text()
