"""`interest-server train --events FILE`: a generic event file trains a model that beats
popularity on a time split; events without a pattern are refused; `--force` writes anyway."""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from interest_client import InterestClient
from interest_server.cli import main
from interest_server.model.sequence_model import SequenceInterestModel
from interest_server.offline.event_source import read_catalog_file
from interest_server.offline.import_stream import import_file
from interest_server.offline.sequences import embed_items

COLOURS = ["red", "blue", "green", "amber", "violet", "silver", "black", "white"]
THINGS = ["lamp", "kettle", "chair", "desk", "rug", "vase"]
N_ITEMS = 36


def write_events(directory: Path, *, pattern: bool, n_users: int = 300,
                 seed: int = 3) -> tuple[Path, Path]:
    """A catalog of described items and view events: with `pattern`, each user walks the items
    in order (i -> i+1) from a random start; without, users pick items at random (Zipf-skewed,
    so popularity is the best anyone can do). Sessions overlap in time, so the newest 10% of
    the events cut through many users."""
    rng = random.Random(seed)
    directory.mkdir(parents=True, exist_ok=True)
    catalog = directory / "items.jsonl"
    with catalog.open("w") as f:
        for i in range(N_ITEMS):
            f.write(json.dumps({"item_id": f"i{i}",
                                "text": f"{COLOURS[i % 8]} {THINGS[i % 6]} model {i}",
                                "attributes": {"colour": [COLOURS[i % 8]]}}) + "\n")
    weights = [1.0 / (k + 1) for k in range(N_ITEMS)]
    events = directory / "events.csv"
    with events.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["user_id", "item_id", "type", "timestamp"])
        for u in range(n_users):
            start_t = 1_600_000_000 + rng.randrange(0, 100 * 3600)
            start, length = rng.randrange(N_ITEMS), rng.randrange(8, 16)
            for step in range(length):
                item = ((start + step) % N_ITEMS if pattern
                        else rng.choices(range(N_ITEMS), weights)[0])
                writer.writerow([f"u{u}", f"i{item}", "view", start_t + step * 36000])
    return events, catalog


def train_args(events: Path, catalog: Path | None, out: Path, *extra: str) -> list[str]:
    args = ["train", "--events", str(events), "--out", str(out), "--epochs", "12", "--quiet"]
    return args + (["--catalog", str(catalog)] if catalog else []) + list(extra)


def test_events_file_trains_a_model_that_beats_popularity(tmp_path: Path) -> None:
    events, catalog = write_events(tmp_path / "walks", pattern=True)
    out = tmp_path / "model.pt"
    assert main(train_args(events, catalog, out)) == 0
    model = SequenceInterestModel.load(out)
    meta = model.metadata
    assert meta["split"].startswith("time: the newest 10%")
    assert meta["trained_on"] == "events file events.csv"
    assert meta["valid_users"] >= 50
    assert meta["beats_popularity"] is True
    assert meta["valid"]["ndcg@10"] > meta["popularity_valid"]["ndcg@10"] + 0.3
    # Through the serving API, with the vectors the server would hold: the walk continues.
    ids = [f"i{i}" for i in range(N_ITEMS)]
    text, text_model = embed_items(read_catalog_file(catalog).texts)
    assert model.text_model_id == text_model
    history = ["i5", "i6", "i7"]
    vector = model.user_vector(history, text[[5, 6, 7]])
    scores = model.item_matrix(ids, text) @ vector
    scores[[5, 6, 7]] = -np.inf
    assert ids[int(np.argmax(scores))] == "i8"


def test_events_without_a_pattern_are_refused(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    events, catalog = write_events(tmp_path / "random", pattern=False)
    out = tmp_path / "model.pt"
    assert main(train_args(events, catalog, out)) == 3
    err = capsys.readouterr().err
    assert "does not beat popularity on validation" in err and "NDCG@10" in err, err
    assert "HR@10" in err and "--force" in err
    assert not out.exists() and not out.with_suffix(".png").exists()

    assert main(train_args(events, catalog, out, "--force")) == 0
    assert "does not beat popularity" in capsys.readouterr().err
    meta = torch.load(out, weights_only=True)["metadata"]
    assert meta["beats_popularity"] is False


def test_events_without_item_texts_say_what_is_needed(tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    events, _ = write_events(tmp_path / "walks", pattern=True, n_users=20)
    assert main(train_args(events, None, tmp_path / "model.pt")) == 1
    err = capsys.readouterr().err
    assert "item texts are needed" in err and "--catalog FILE" in err and "--redis-url" in err


def test_redis_event_log_and_catalog_train_a_model(tmp_path: Path, make_server,  # noqa: ANN001
                                                    redis_server: str) -> None:
    """Events streamed through a real server reach its event log; `train --redis-url` reads
    that log and the catalog the server stored (texts and vectors), with no files."""
    events, catalog = write_events(tmp_path / "walks", pattern=True)
    running = make_server(concept_extractor="rules")  # descriptions play no part here
    with InterestClient(running.target, timeout_s=60, tenant="shop") as client:
        client.upsert_items([json.loads(line) for line in catalog.read_text().splitlines()])
        result = import_file(client, events, progress=False)
    assert result.applied == len(events.read_text().splitlines()) - 1  # all but the header
    assert not result.rejected and not result.invalid
    out = tmp_path / "model.pt"
    # The default tenant holds nothing: the log is per tenant.
    assert main(["train", "--redis-url", redis_server, "--out", str(out), "--quiet"]) == 1
    assert main(["train", "--redis-url", redis_server, "--tenant", "shop", "--out", str(out),
                 "--epochs", "12", "--quiet"]) == 0
    model = SequenceInterestModel.load(out)
    assert model.metadata["trained_on"] == "event log of tenant shop in Redis"
    assert model.metadata["beats_popularity"] is True
    assert model.text_model_id == running.engine.encoder.model_id
    assert sorted(model.item_ids) == sorted(f"i{i}" for i in range(N_ITEMS))
    # The same events from the file train the same histories: the log lost nothing.
    from_file = torch.load(out, weights_only=True)["metadata"]["valid_users"]
    assert main(train_args(events, catalog, tmp_path / "file.pt")) == 0
    assert SequenceInterestModel.load(tmp_path / "file.pt").metadata["valid_users"] == from_file
