"""`interest-server train-concepts` end to end with tiny settings."""

from __future__ import annotations

import json
from pathlib import Path

from interest_server import cli
from interest_server.model.concept_extractor import ConceptExtractor
from interest_server.model.concept_head import read_metadata
from interest_server.model.encoder import TextEncoder


def test_train_concepts_writes_a_loadable_head_and_report(tmp_path: Path) -> None:
    out = tmp_path / "head.safetensors"
    assert cli.main(["train-concepts", "--out", str(out), "--generated", "200",
                     "--epochs", "1", "--train-repeat", "1"]) == 0
    meta = read_metadata(out)
    encoder = TextEncoder(device="cpu")
    assert meta["encoder_model_id"] == encoder.model_id
    assert meta["training"]["generated"] == 200 and meta["training"]["best_epoch"] == 1
    report = json.loads(out.with_suffix(".json").read_text(encoding="utf-8"))
    assert report["history"]["epoch"] == [1] and len(report["history"]["loss"]) == 1
    assert {"head", "rules"} <= set(report["dev"]) and "all" in report["dev"]["head"]
    extractor = ConceptExtractor(encoder, out)
    assert isinstance(extractor.extract("I love westerns but hate horror"), list)
