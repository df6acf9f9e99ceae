"""TextEncoder.embed_both (both poolings from one forward pass) and its use by Conceptualizer."""

from __future__ import annotations

import os

import numpy as np
import pytest

# Set before transformers is imported: tests must never reach for a model hub.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from interest_server.model.concepts import ConceptPhrase, Polarity  # noqa: E402
from interest_server.model.conceptualizer import Conceptualizer  # noqa: E402
from interest_server.model.encoder import TextEncoder  # noqa: E402

PHRASES = [
    "mystery films",
    "romance",
    "",  # no real token: attention pooling falls back to the mean
    "a",
    "space battles and aliens in a galaxy far, far away",
    "kids' stuff",
    "film noir",
    "documentaries about nature and wildlife, slow and calm, narrated by David Attenborough",
    "romantic comedies " * 60,  # truncated at max_seq_length
    "喜欢 悬疑",
]


@pytest.fixture(scope="module")
def encoder() -> TextEncoder:
    # batch_size 4: the phrases span several batches, so the length ordering and the scatter
    # back into input order are exercised too.
    enc = TextEncoder(device="cpu", batch_size=4)
    enc.warm()
    return enc


def test_embed_both_equals_embed_concepts_and_embed(encoder: TextEncoder) -> None:
    attention, mean = encoder.embed_both(PHRASES)
    want_attention, want_mean = encoder.embed_concepts(PHRASES), encoder.embed(PHRASES)
    for got, want in ((attention, want_attention), (mean, want_mean)):
        assert got.shape == (len(PHRASES), encoder.dim) and got.dtype == np.float32
        assert got.flags["C_CONTIGUOUS"]
        np.testing.assert_allclose(got, want, atol=1e-5, rtol=0)
        np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    # The two poolings really differ (the test would pass trivially otherwise).
    assert float(np.abs(attention - mean).max()) > 1e-2


def test_embed_both_single_phrase_and_empty(encoder: TextEncoder) -> None:
    attention, mean = encoder.embed_both(["I hate romance"])
    np.testing.assert_allclose(attention, encoder.embed_concepts(["I hate romance"]), atol=1e-5)
    np.testing.assert_allclose(mean, encoder.embed(["I hate romance"]), atol=1e-5)
    attention, mean = encoder.embed_both([])
    assert attention.shape == mean.shape == (0, encoder.dim)
    with pytest.raises(TypeError):
        encoder.embed_both("romance")


def test_conceptualizer_uses_embed_both_once_instead_of_two_passes() -> None:
    calls: list[tuple[str, list[str]]] = []

    def record(kind: str, value: float):  # noqa: ANN202
        def fn(texts: list[str]) -> np.ndarray:
            calls.append((kind, list(texts)))
            return np.full((len(texts), 4), value, dtype=np.float32)
        return fn

    def both(texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        calls.append(("both", list(texts)))
        return (np.full((len(texts), 4), 1.0, dtype=np.float32),
                np.full((len(texts), 4), 2.0, dtype=np.float32))

    cz = Conceptualizer(record("concepts", 1.0), record("embed", 2.0), "m1", embed_both=both)
    out = cz.attach_vectors([ConceptPhrase("westerns", Polarity.POSITIVE, 0.9),
                             ConceptPhrase("horror", Polarity.NEGATIVE, 1.0)])
    assert calls == [("both", ["westerns", "horror"])]
    assert [(c.phrase, c.model) for c in out] == [("westerns", "m1"), ("horror", "m1")]
    for c in out:
        np.testing.assert_array_equal(c.vector, np.ones(4, dtype=np.float32))
        np.testing.assert_array_equal(c.ground_vector, np.full(4, 2.0, dtype=np.float32))
    assert cz.attach_vectors([]) == [] and len(calls) == 1

    calls.clear()  # without embed_both: the two calls, as before
    cz = Conceptualizer(record("concepts", 1.0), record("embed", 2.0), "m1")
    cz.attach_vectors([ConceptPhrase("westerns", Polarity.POSITIVE, 0.9)])
    assert calls == [("concepts", ["westerns"]), ("embed", ["westerns"])]


def test_conceptualizer_with_the_real_encoder_matches_the_two_pass_vectors(
        encoder: TextEncoder) -> None:
    phrases = [ConceptPhrase("mystery films", Polarity.POSITIVE, 1.0),
               ConceptPhrase("romance", Polarity.NEGATIVE, 1.0)]
    one = Conceptualizer(encoder.embed_concepts, encoder.embed, encoder.model_id,
                         embed_both=encoder.embed_both).attach_vectors(phrases)
    two = Conceptualizer(encoder.embed_concepts, encoder.embed,
                         encoder.model_id).attach_vectors(phrases)
    for a, b in zip(one, two, strict=True):
        np.testing.assert_allclose(a.vector, b.vector, atol=1e-5, rtol=0)
        np.testing.assert_allclose(a.ground_vector, b.ground_vector, atol=1e-5, rtol=0)
