"""The learned concept extractor with the shipped head on the real default encoder."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest

# tests/conftest.py sets HF_HUB_OFFLINE before anything imports transformers.
from interest_server.model.concept_extractor import (
    ConceptExtractor,
    HeadMismatch,
    default_head_path,
)
from interest_server.model.concept_head import ConceptHead, load_head, read_metadata, save_head
from interest_server.model.concept_spans import LABELS
from interest_server.model.concepts import Polarity
from interest_server.model.encoder import TextEncoder

POS, NEG = Polarity.POSITIVE, Polarity.NEGATIVE


@pytest.fixture(scope="module")
def encoder() -> TextEncoder:
    return TextEncoder(device="cpu")


@pytest.fixture(scope="module")
def extractor(encoder: TextEncoder) -> ConceptExtractor:
    return ConceptExtractor(encoder)


def test_shipped_head_is_a_small_safetensors_file_for_the_default_encoder(
        encoder: TextEncoder) -> None:
    path = default_head_path()
    assert path.is_file() and path.stat().st_size < 5 * 1024 * 1024
    raw = path.read_bytes()
    # safetensors: an 8-byte little-endian header length, then a JSON header; no pickle
    (header_len,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + header_len])
    assert header["__metadata__"]["encoder_model_id"] == encoder.model_id
    meta = read_metadata(path)
    assert tuple(meta["labels"]) == LABELS and meta["sizes"]["dim"] == encoder.dim
    assert meta["training"]["dev_f1"] > 0
    head, _ = load_head(path)
    assert not head.training


def phrases(extractor: ConceptExtractor, text: str) -> dict[str, Polarity]:
    return {c.phrase: c.polarity for c in extractor.extract(text)}


def test_question_then_refusal_is_a_dislike(extractor: ConceptExtractor) -> None:
    assert phrases(extractor, "Horror? Count me out.") == {"horror": NEG}


def test_a_no_from_me_is_a_dislike(extractor: ConceptExtractor) -> None:
    found = phrases(extractor, "Anything with zombies is a no from me.")
    assert found == {"zombies": NEG}


def test_french_contrast(extractor: ConceptExtractor) -> None:
    found = phrases(extractor, "J'adore les comédies mais je déteste les films d'horreur.")
    liked = [p for p, pol in found.items() if pol == POS]
    disliked = [p for p, pol in found.items() if pol == NEG]
    assert len(liked) == 1 and "comédies" in liked[0]
    assert len(disliked) == 1 and "films d'horreur" in disliked[0]


def test_chinese_like_and_hate(extractor: ConceptExtractor) -> None:
    assert phrases(extractor, "喜欢悬疑电影，讨厌爱情电影") == {"悬疑电影": POS, "爱情电影": NEG}


def test_weights_phrases_and_version(extractor: ConceptExtractor) -> None:
    concepts = extractor.extract("I LOVE   Westerns!")
    assert concepts and all(0.05 <= c.weight <= 1.0 for c in concepts)
    assert all(c.phrase == c.phrase.lower().strip() and "  " not in c.phrase for c in concepts)
    assert extractor.version.startswith("concept-head:") and len(extractor.version) == 25
    assert extractor.extract("") == [] and extractor.extract("   ") == []


def test_a_text_longer_than_the_encoder_takes_is_read_to_the_end(
        extractor: ConceptExtractor, encoder: TextEncoder) -> None:
    filler = "We watch films together on Sunday evenings with the whole family. " * 40
    text = filler + "I really hate horror films."
    assert encoder.count_tokens(text) > encoder.max_seq_length
    spans = extractor.spans(text)
    assert any(s.start >= len(filler) and s.polarity == NEG for s in spans)


def test_a_head_of_another_encoder_is_refused(encoder: TextEncoder, tmp_path: Path) -> None:
    path = save_head(ConceptHead(encoder.dim, hidden=4), tmp_path / "other.safetensors",
                     "some-other-encoder:0123456789ab", {})
    with pytest.raises(HeadMismatch, match="interest-server train-concepts --model-dir DIR"):
        ConceptExtractor(encoder, path)
    path = save_head(ConceptHead(encoder.dim + 8, hidden=4), tmp_path / "dim.safetensors",
                     encoder.model_id, {})
    with pytest.raises(HeadMismatch, match="dim"):
        ConceptExtractor(encoder, path)
