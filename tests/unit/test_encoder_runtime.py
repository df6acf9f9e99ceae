"""Encoder runtimes (eager, torchscript, torchscript-bf16) vs a plain transformers pass."""

from __future__ import annotations

import argparse

import numpy as np
import pytest
import torch

# tests/conftest.py sets HF_HUB_OFFLINE before anything imports transformers.
from interest_server import config
from interest_server.model import encoder_runtime
from interest_server.model.encoder import TextEncoder
from interest_server.model.encoder_runtime import RUNTIMES, native_bf16_cpu, resolve_runtime
from interest_server.model.encoder_weights import default_model_dir
from transformers import AutoModel, AutoTokenizer

TEXTS = [
    "Toy Story (1995). Genres: Animation, Children's, Comedy",
    "I love mystery films",
    "I hate romance",
    "",
    "a",
    "Murder on the Orient Express (1974). Genres: Mystery, Crime",
    "documentaries about nature and wildlife, slow and calm, narrated by David Attenborough",
    "喜欢 悬疑",
    "romantic comedies " * 60,  # truncated at max_seq_length
]


@pytest.fixture(scope="module")
def reference() -> np.ndarray:
    """Mean-pooled, normalised vectors from the plain transformers module, one text at a time
    (no padding at all), written out here rather than taken from TextEncoder."""
    model_dir = default_model_dir()
    tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
    model = AutoModel.from_pretrained(model_dir, local_files_only=True).eval()
    rows = []
    with torch.inference_mode():
        for text in TEXTS:
            enc = tokenizer([text], truncation=True, max_length=256, return_tensors="pt")
            states = model(**enc).last_hidden_state[0]
            vector = states.mean(0)
            rows.append((vector / vector.norm()).numpy())
    return np.stack(rows)


@pytest.fixture(scope="module")
def eager() -> TextEncoder:
    return TextEncoder(device="cpu", runtime="eager", batch_size=4)


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def test_auto_is_torchscript_on_cpu_and_unknown_runtimes_are_refused() -> None:
    assert resolve_runtime("auto", torch.device("cpu")) == "torchscript"
    assert resolve_runtime("auto", torch.device("cuda")) == "eager"
    for runtime in RUNTIMES[1:]:
        assert resolve_runtime(runtime, torch.device("cpu")) == runtime
    with pytest.raises(ValueError, match="unknown encoder runtime"):
        resolve_runtime("onnx", torch.device("cpu"))
    with pytest.raises(ValueError, match="unknown encoder runtime"):
        TextEncoder(device="cpu", runtime="tensorrt")


def test_setting_flag_and_default() -> None:
    assert config.Settings().encoder_runtime == "auto"
    parser = argparse.ArgumentParser()
    config.add_arguments(parser)
    ns = parser.parse_args(["--encoder-runtime", "eager"])
    assert config.from_args(ns).encoder_runtime == "eager"
    assert "torchscript" in parser.format_help()


def test_torchscript_equals_the_plain_transformers_pass(reference: np.ndarray,
                                                        eager: TextEncoder) -> None:
    # batch_size 4: several padded batches, sorted by length and scattered back.
    fast = TextEncoder(device="cpu", runtime="torchscript", batch_size=4)
    assert fast.runtime == "torchscript"
    got = fast.embed(TEXTS)
    assert _cosines(got, reference).min() >= 0.999
    # Same fp32 arithmetic: equal to the eager path to rounding, for both poolings.
    np.testing.assert_allclose(got, eager.embed(TEXTS), atol=1e-5, rtol=0)
    np.testing.assert_allclose(fast.embed_concepts(TEXTS), eager.embed_concepts(TEXTS),
                               atol=1e-5, rtol=0)
    np.testing.assert_allclose(np.vstack([fast.embed([t]) for t in TEXTS]), reference,
                               atol=1e-5, rtol=0)


def test_eager_equals_the_plain_transformers_pass(reference: np.ndarray,
                                                  eager: TextEncoder) -> None:
    assert eager.runtime == "eager"
    np.testing.assert_allclose(eager.embed(TEXTS), reference, atol=1e-5, rtol=0)


@pytest.mark.skipif(not native_bf16_cpu(), reason="no native bf16 on this CPU")
def test_bf16_stays_within_cosine_0999(reference: np.ndarray, eager: TextEncoder) -> None:
    bf16 = TextEncoder(device="cpu", runtime="torchscript-bf16", batch_size=4)
    assert bf16.runtime == "torchscript-bf16"
    assert _cosines(bf16.embed(TEXTS), reference).min() >= 0.999
    assert _cosines(bf16.embed_concepts(TEXTS), eager.embed_concepts(TEXTS)).min() >= 0.999


def test_a_failed_trace_falls_back_to_eager(monkeypatch: pytest.MonkeyPatch,
                                            reference: np.ndarray) -> None:
    def broken_trace(*args: object, **kwargs: object) -> None:
        raise RuntimeError("this torch cannot trace")

    monkeypatch.setattr(torch.jit, "trace", broken_trace)
    enc = TextEncoder(device="cpu", runtime="torchscript")
    assert enc.runtime == "eager"
    np.testing.assert_allclose(enc.embed(TEXTS), reference, atol=1e-5, rtol=0)


def test_a_trace_that_disagrees_is_not_used(monkeypatch: pytest.MonkeyPatch,
                                            reference: np.ndarray) -> None:
    # No cosine reaches 1.01: the agreement check must refuse the traced pass.
    monkeypatch.setattr(encoder_runtime, "_TRACE_MIN_COSINE", 1.01)
    enc = TextEncoder(device="cpu", runtime="torchscript")
    assert enc.runtime == "eager"
    np.testing.assert_allclose(enc.embed(TEXTS), reference, atol=1e-5, rtol=0)
