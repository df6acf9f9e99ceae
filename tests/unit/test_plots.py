"""Without matplotlib (the offline extra) plots are skipped with one line; results still land."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import numpy as np
import pytest
from interest_server.model.sequence_model import SeqConfig
from interest_server.offline import plots
from interest_server.offline.evaluation import ModelRun, write_results
from interest_server.offline.sequences import SplitData
from interest_server.offline.training import TrainConfig, train_on_split

HISTORY = {"epoch": [1, 2], "loss": [2.0, 1.5], "eval_epoch": [2], "valid_ndcg@10": [0.3]}
METRICS = {"recall@10": 0.5, "ndcg@10": 0.3, "mrr@10": 0.2, "recall@20": 0.6, "ndcg@20": 0.35}


@pytest.fixture
def no_matplotlib(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # `import matplotlib` raises


def _skips(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.name == plots.__name__ and "matplotlib is not installed" in r.getMessage()]


def test_a_plot_is_skipped_with_one_line(no_matplotlib: None, tmp_path: Path,
                                         caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    assert plots.training_curve(HISTORY, tmp_path / "curve.png") is None
    assert plots.metric_bars({"a": METRICS}, tmp_path / "bars.png") is None
    assert not list(tmp_path.iterdir())
    lines = _skips(caplog)
    assert len(lines) == 2 and all("\n" not in line for line in lines)
    assert "curve.png" in lines[0] and "interest-server[offline]" in lines[0]


def test_evaluation_writes_its_results_without_matplotlib(
        no_matplotlib: None, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    write_results([ModelRun("model", valid=METRICS, test=METRICS, popularity_test=METRICS)],
                  tmp_path)
    result = json.loads((tmp_path / "replay_eval.json").read_text())
    assert result["test"]["model"] == METRICS
    assert (tmp_path / "replay_eval.md").is_file()
    assert not (tmp_path / "replay_eval.png").exists()
    assert len(_skips(caplog)) == 1


def test_training_saves_and_reports_without_matplotlib(
        no_matplotlib: None, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    rng = np.random.default_rng(0)
    items = [f"m{i}" for i in range(12)]
    users = [f"u{u}" for u in range(8)]
    walks = {u: [items[(n + step) % 12] for step in range(7)] for n, u in enumerate(users)}
    split = SplitData(items, rng.normal(size=(12, 8)).astype(np.float32), "test-encoder",
                      users, {u: w[:-2] for u, w in walks.items()},
                      {u: w[-2] for u, w in walks.items()}, {u: w[-1] for u, w in walks.items()})
    out = tmp_path / "model.pt"
    report = train_on_split(
        split, out,
        SeqConfig(dim=8, n_layers=1, n_heads=2, max_len=6, memory_k=0, tied=False),
        TrainConfig(epochs=2, batch_size=4, eval_every=1, threads=1, prior_scales=(0.0,)),
        progress=False,
    )
    assert out.is_file() and report["checkpoint"] == str(out)
    assert report["plot"] is None and not out.with_suffix(".png").exists()
    assert set(report["test"]) >= {"ndcg@10", "recall@10"}
    json.dumps(report)  # the report the CLI prints is still JSON
    assert len(_skips(caplog)) == 1


def test_with_matplotlib_the_plots_are_written(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    assert plots.training_curve(HISTORY, tmp_path / "curve.png") == tmp_path / "curve.png"
    assert plots.metric_bars({"a": METRICS}, tmp_path / "bars.png") == tmp_path / "bars.png"
    assert (tmp_path / "curve.png").stat().st_size > 0 and (tmp_path / "bars.png").is_file()
