"""bench/recommend_movielens.py end to end on a tiny MovieLens (real server process, model,
Redis): the realism benchmark must keep working as the server changes."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from .test_demo import SYNTHETIC, write_grouplens

BENCH = Path(__file__).resolve().parents[2] / "bench"


def test_recommend_movielens_runs_and_checks_its_lists(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    data = tmp_path / "ml"
    write_grouplens(data)
    monkeypatch.syspath_prepend(str(BENCH))
    import _common
    import recommend_movielens

    monkeypatch.setattr(_common, "RESULTS", tmp_path / "results")
    monkeypatch.setattr(sys, "argv", ["recommend_movielens.py", "--data", str(data),
                                      "--users", "2", "--min-ratings", "10",
                                      "--requests", "3", "--tag", "smoke"])
    recommend_movielens.main()
    out = json.loads((tmp_path / "results" / "recommend_movielens_smoke.json").read_text())
    assert out["users"] == 2 and out["movies"] == len(SYNTHETIC)
    # Every user's three lists were checked against the exact scores computed by the bench.
    assert {v: r["n"] for v, r in out["recall_at_10_vs_exact"].items()} == {"h": 2, "d": 2,
                                                                           "p": 2}
    # Exact path (a tiny catalog): the server's lists are the exact ones.
    assert all(r["mean"] == 1.0 for r in out["recall_at_10_vs_exact"].values())
    assert out["romance_in_dislike_lists"] == 0
    assert {k: v["n"] for k, v in out["latency"].items()} == {"h": 3, "d": 3, "p": 3,
                                                              "faiss": 3}
    assert out["concepts"] == ["romance -> ['genre=Romance']",
                               "mystery films -> ['genre=Mystery']"]
