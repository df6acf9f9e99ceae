"""Text encoder: item vectors by mean pooling, concept vectors by attention pooling, one model."""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence

import numpy as np
import torch

from interest_server.model.encoder_runtime import (
    TRACE_CHECK_TEXTS,
    TokenStates,
    load_traced,
    resolve_runtime,
)
from interest_server.model.encoder_weights import load_model, model_id_for, resolve_model_dir
from interest_server.model.pooling import Pool, attention_pool, both_pool, mean_pool, normalise

logger = logging.getLogger(__name__)


class TextEncoder:
    """A local Hugging Face encoder that turns texts into L2-normalised float32 vectors.

    Thread-safe: forward passes (and the tokenizer, whose Rust backend is not safe to share while
    it changes padding/truncation settings) run under one lock, batch by batch, so a long catalog
    embedding lets short request-path calls in between its batches.
    """

    def __init__(
        self,
        model_dir: str = "",
        max_seq_length: int = 256,
        batch_size: int = 32,
        device: str | None = None,
        runtime: str = "auto",
    ) -> None:
        if max_seq_length < 2:
            raise ValueError("max_seq_length must leave room for [CLS] and [SEP]")
        if batch_size < 1:
            raise ValueError("batch_size must be positive")
        self.model_dir = resolve_model_dir(model_dir)
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.batch_size = batch_size
        self.model_id = model_id_for(self.model_dir)
        self._tokenizer, self._model = load_model(self.model_dir, self.device)
        model_max = int(getattr(self._model.config, "max_position_embeddings", max_seq_length))
        self.max_seq_length = min(max_seq_length, model_max)
        self.dim = int(self._model.config.hidden_size)
        self._lock = threading.Lock()
        # The inputs the model takes, in the order the traced module receives them.
        self._input_names = [n for n in ("input_ids", "attention_mask", "token_type_ids")
                             if n in self._tokenizer.model_input_names or n == "attention_mask"]
        self._pad_id = int(self._tokenizer.pad_token_id or 0)
        self._states = TokenStates(self._model, self._input_names)
        self.runtime = self._load_runtime(resolve_runtime(runtime, self.device))
        logger.info(
            "encoder %s loaded from %s on %s (runtime %s, dim %d, max_seq_length %d)",
            self.model_id,
            self.model_dir,
            self.device,
            self.runtime,
            self.dim,
            self.max_seq_length,
        )

    # -- public API ---------------------------------------------------------------------------

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Sentence vectors (n, dim): mean of the token states over the attention mask.

        This is the pooling all-MiniLM-L6-v2 was trained with (sentence-transformers'
        Pooling + Normalize), so the vectors match `SentenceTransformer.encode`.
        """
        return self._encode(texts, mean_pool)

    def embed_concepts(self, phrases: Sequence[str]) -> np.ndarray:
        """Concept vectors (n, dim): token states W pooled by parameter-free self-attention.

        The query is the phrase's own mean-pooled state, i.e. exactly the vector `embed` gives it.
        Each real token (no [CLS], [SEP] or padding) scores `w_t . q / sqrt(dim)`; the softmax of
        the scores weights the sum of token states. Tokens that agree with the phrase's overall
        meaning weigh more than those that do not (in "I love the whole family": love 0.27,
        family 0.25, the 0.16, whole 0.15), and dropping [CLS]/[SEP] keeps their shared, generic
        direction out. The result stays a convex mix of the same token states that mean pooling
        averages, so it lives in the same space as the mean-pooled item vectors it is compared
        with (a learned head would need training data this model does not ship with).
        """
        return self._encode(phrases, attention_pool)

    def embed_both(self, phrases: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """(embed_concepts(phrases), embed(phrases)) from ONE forward pass per batch.

        Both poolings read the same token states, so running the model once and pooling twice
        gives the same vectors (attention-pooled, then mean-pooled, each L2-normalised) at half
        the model cost of calling the two methods.
        """
        both = self._encode(phrases, both_pool, (2, self.dim))
        return np.ascontiguousarray(both[:, 0]), np.ascontiguousarray(both[:, 1])

    def token_states(self, texts: Sequence[str]) -> list[tuple[np.ndarray, list[tuple[int, int]]]]:
        """Per text: float32 token states (n_tokens, dim) of its real tokens and their offsets.

        Real tokens: no [CLS], [SEP] or padding. Offsets are (start, end) character positions in
        the text (the fast tokenizer's offset mapping), so a token-level model can be read back
        onto the text. Same runtime, lock and length-sorted batching as `embed`; a text longer
        than max_seq_length tokens is truncated here, so callers that must see all of a long
        text cut it into windows first (the states of the tokens kept are those of `embed`).
        """
        if isinstance(texts, str):
            raise TypeError("texts must be a sequence of strings, not a single string")
        texts = list(texts)
        if not texts:
            return []
        with self._lock:
            enc = self._tokenizer(
                texts,
                truncation=True,
                max_length=self.max_seq_length,
                return_special_tokens_mask=True,
                return_offsets_mapping=True,
                return_attention_mask=False,
                return_token_type_ids=False,
            )
        ids, special, offsets = enc["input_ids"], enc["special_tokens_mask"], enc["offset_mapping"]
        out: list[tuple[np.ndarray, list[tuple[int, int]]]] = [None] * len(texts)  # type: ignore[list-item]
        order = np.argsort([-len(x) for x in ids], kind="stable")
        for start in range(0, len(texts), self.batch_size):
            idx = order[start : start + self.batch_size]
            inputs, _ = self._pad([ids[i] for i in idx], [special[i] for i in idx])
            with self._lock, torch.inference_mode():
                states = self._states(inputs).cpu().numpy()
            for row, i in enumerate(idx):
                keep = [k for k, s in enumerate(special[i]) if not s]
                out[i] = (np.ascontiguousarray(states[row, keep], dtype=np.float32),
                          [(int(offsets[i][k][0]), int(offsets[i][k][1])) for k in keep])
        return out

    def count_tokens(self, text: str) -> int:
        """Tokens in a text, special tokens excluded, counted up to max_seq_length + 1: enough
        to tell whether it fits, without tokenizing (or warning about) all of a long text."""
        with self._lock:
            return len(self._tokenizer(text, add_special_tokens=False, truncation=True,
                                       max_length=self.max_seq_length + 1,
                                       return_attention_mask=False,
                                       return_token_type_ids=False)["input_ids"])

    def warm(self) -> None:
        """One forward pass of each kind, so the first request does not pay for lazy set-up."""
        self.embed(["warm up the encoder"])
        self.embed_concepts(["warm up"])

    # -- internals ----------------------------------------------------------------------------

    def _encode(self, texts: Sequence[str], pool: Pool,
                shape: tuple[int, ...] | None = None) -> np.ndarray:
        if isinstance(texts, str):
            # A bare string is a Sequence[str] of characters; that is never what a caller means.
            raise TypeError("texts must be a sequence of strings, not a single string")
        texts = list(texts)
        out = np.empty((len(texts), *(shape or (self.dim,))), dtype=np.float32)
        if not texts:
            return out
        ids, special = self._tokenize(texts)
        # Longest first, like sentence-transformers: texts of similar length share a batch, so
        # little compute goes to padding, and an out-of-memory shows up on the first batch.
        order = np.argsort([-len(x) for x in ids], kind="stable")
        for start in range(0, len(texts), self.batch_size):
            idx = order[start : start + self.batch_size]
            vectors = self._forward([ids[i] for i in idx], [special[i] for i in idx], pool)
            out[idx] = vectors  # scatter back: the caller gets vectors in input order
        return out

    def _tokenize(self, texts: list[str]) -> tuple[list[list[int]], list[list[int]]]:
        """Token ids and special-token masks, unpadded, in one tokenizer call for all texts.

        Batches are padded from these in _pad, so each text is tokenized once (tokenizing for the
        length sort and again per batch cost ~4% of a catalog embedding).
        """
        with self._lock:
            enc = self._tokenizer(
                texts,
                truncation=True,
                max_length=self.max_seq_length,
                return_special_tokens_mask=True,
                return_attention_mask=False,
                return_token_type_ids=False,
            )
        return enc["input_ids"], enc["special_tokens_mask"]

    def _pad(self, ids: list[list[int]],
             special: list[list[int]]) -> tuple[list[torch.Tensor], torch.Tensor]:
        """(model inputs in _input_names order, special-tokens mask), right-padded to the longest.

        The same tensors the tokenizer's own padding makes for a single-segment encoder: pad id,
        attention mask 0 and token type 0 on padding.
        """
        width = max(len(x) for x in ids)
        input_ids = np.full((len(ids), width), self._pad_id, dtype=np.int64)
        mask = np.zeros((len(ids), width), dtype=np.int64)
        special_mask = np.ones((len(ids), width), dtype=np.int64)
        for row, (tokens, spec) in enumerate(zip(ids, special, strict=True)):
            input_ids[row, : len(tokens)] = tokens
            mask[row, : len(tokens)] = 1
            special_mask[row, : len(spec)] = spec
        by_name = {"input_ids": input_ids, "attention_mask": mask,
                   "token_type_ids": np.zeros_like(input_ids)}
        inputs = [torch.from_numpy(by_name[n]).to(self.device) for n in self._input_names]
        return inputs, torch.from_numpy(special_mask).to(self.device)

    def _forward(self, ids: list[list[int]], special: list[list[int]],
                 pool: Pool) -> np.ndarray:
        inputs, special_mask = self._pad(ids, special)
        attention_mask = inputs[self._input_names.index("attention_mask")]
        with self._lock, torch.inference_mode():
            states = self._states(inputs)
            return normalise(pool(states, attention_mask, special_mask)).cpu().numpy()

    def _load_runtime(self, runtime: str) -> str:
        """The runtime actually in use: a torchscript one is traced and checked against eager
        on TRACE_CHECK_TEXTS (encoder_runtime.load_traced), and falls back to eager."""
        if runtime == "eager":
            return runtime
        ids, special = self._tokenize(list(TRACE_CHECK_TEXTS))
        batches = [(ids, special)] + [([i], [s]) for i, s in zip(ids, special, strict=True)]
        example, _ = self._pad(ids, special)  # padded: the trace must keep the mask path
        return load_traced(
            self._states, runtime, self.device, example,
            lambda: [self._forward(b_ids, b_special, mean_pool) for b_ids, b_special in batches])
