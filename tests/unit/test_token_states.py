"""TextEncoder.token_states: the real tokens' states and offsets, as the eager model gives them."""

from __future__ import annotations

import numpy as np
import pytest
import torch

# tests/conftest.py sets HF_HUB_OFFLINE before anything imports transformers.
from interest_server.model.encoder import TextEncoder
from interest_server.model.encoder_weights import default_model_dir
from transformers import AutoModel, AutoTokenizer

TEXTS = ["I can't stand horror films", "J'adore les comédies.", "喜欢悬疑电影", "",
         "a much longer text about westerns, jazz and slow documentaries about the sea"]


@pytest.fixture(scope="module")
def encoder() -> TextEncoder:
    # the default runtime (torchscript on CPU), small batches so the texts span several
    return TextEncoder(device="cpu", batch_size=2)


def test_states_equal_the_eager_model_without_special_tokens(encoder: TextEncoder) -> None:
    model_dir = default_model_dir()
    tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
    model = AutoModel.from_pretrained(model_dir, local_files_only=True).eval()
    got = encoder.token_states(TEXTS)
    assert len(got) == len(TEXTS)
    for text, (states, offsets) in zip(TEXTS, got, strict=True):
        enc = tokenizer([text], return_tensors="pt", return_offsets_mapping=True)
        with torch.inference_mode():
            want = model(input_ids=enc["input_ids"],
                         attention_mask=enc["attention_mask"]).last_hidden_state[0, 1:-1]
        assert states.dtype == np.float32 and states.shape == (len(want), encoder.dim)
        np.testing.assert_allclose(states, want.numpy(), atol=2e-4)
        assert offsets == [tuple(o) for o in enc["offset_mapping"][0, 1:-1].tolist()]
    states, offsets = got[0]
    assert [TEXTS[0][s:e] for s, e in offsets][:3] == ["I", "can", "'"]


def test_long_text_is_cut_at_max_tokens_and_a_bare_string_is_refused(encoder: TextEncoder) -> None:
    states, offsets = encoder.token_states(["jazz " * 400])[0]
    assert len(offsets) == encoder.max_seq_length - 2 == len(states)
    assert encoder.count_tokens("jazz " * 400) == encoder.max_seq_length + 1
    assert encoder.count_tokens("jazz blues") == 2
    assert encoder.token_states([]) == []
    with pytest.raises(TypeError):
        encoder.token_states("jazz")  # type: ignore[arg-type]
