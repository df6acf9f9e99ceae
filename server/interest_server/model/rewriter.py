"""Optional LLM step: a local instruction model restates a description as JSON likes/dislikes.

The model's answer is validated, never trusted: anything that is not the JSON asked for, or an
answer that did not come within the time budget, gives way to the fallback extractor. Answers
are cached by (model id, text), so a repeated description costs no generation.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
import unicodedata
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from interest_server.model.concepts import ConceptPhrase, Polarity, merge_concepts, parse_concepts
from interest_server.ops import metrics

log = logging.getLogger(__name__)

DEFAULT_STRENGTH = 0.8
"""Strength of a concept whose JSON gives none (a plain "like"/"dislike")."""
MAX_PHRASE_CHARS = 100
MAX_CONCEPTS = 32
"""As many as one description may yield (Settings.max_concepts_per_user's default)."""

# One worked example: small instruction models follow a shown format far better than a described
# one. Built by concatenation, not str.format, because the JSON is full of braces.
EXAMPLE_TEXT = "I love mystery films, but I can't stand romance and horror is not really my thing."
EXAMPLE_JSON = (
    '{"likes": [{"phrase": "mystery films", "strength": 1.0}], '
    '"dislikes": [{"phrase": "romance", "strength": 1.0}, {"phrase": "horror", "strength": 0.6}]}'
)
PROMPT_HEAD = (
    "Read what a person says they like and dislike. Answer with one JSON object and nothing "
    'else: {"likes": [...], "dislikes": [...]}, each entry {"phrase": short thing in the '
    'person\'s words, "strength": 0 to 1, 1 for love or hate, 0.5 for mild}.\n\n'
    f"Description: {EXAMPLE_TEXT}\nJSON: {EXAMPLE_JSON}\n\n"
)

Extractor = Callable[[str], list[ConceptPhrase]]


def build_prompt(text: str) -> str:
    """The plain-text prompt for one (normalised) description."""
    return f"{PROMPT_HEAD}Description: {text}\nJSON:"


def normalise_text(text: str) -> str:
    """The description as the model sees it and the cache keys it: NFC, whitespace collapsed."""
    return " ".join(unicodedata.normalize("NFC", text).split())


def first_json_object(output: str) -> dict[str, Any] | None:
    """The first JSON object in the output, prose or code fences around it allowed."""
    decoder = json.JSONDecoder()
    start = output.find("{")
    while start != -1:
        try:
            value, _ = decoder.raw_decode(output, start)
        except ValueError:
            value = None
        if isinstance(value, dict):
            return value
        start = output.find("{", start + 1)
    return None


def _strength(raw: Any) -> float:
    # bool is an int to Python, but `"strength": true` says nothing about how much.
    if raw is None or isinstance(raw, bool):
        return DEFAULT_STRENGTH
    try:
        value = float(raw)
    except (TypeError, ValueError):
        return DEFAULT_STRENGTH
    if math.isnan(value):
        return DEFAULT_STRENGTH
    return min(1.0, max(0.0, value))


def _phrase(raw: Any) -> str | None:
    if not isinstance(raw, str):
        return None
    phrase = " ".join(raw.lower().split()).strip(" .,;:!?\"'`")
    if not phrase or len(phrase) > MAX_PHRASE_CHARS:
        return None
    return phrase


def concepts_from_json(answer: dict[str, Any]) -> list[ConceptPhrase] | None:
    """Validated concepts of {"likes": [...], "dislikes": [...]}; None when the shape is wrong.

    Entries are {"phrase": str, "strength": number} (a bare string is a phrase of default
    strength); an entry with no usable phrase is dropped. A phrase both liked and disliked is
    kept as a dislike: showing what someone asked never to see is the worse mistake.
    """
    if "likes" not in answer and "dislikes" not in answer:
        return None
    found: list[ConceptPhrase] = []
    for key, polarity in (("likes", Polarity.POSITIVE), ("dislikes", Polarity.NEGATIVE)):
        entries = answer.get(key) or []
        if not isinstance(entries, list):
            return None
        for entry in entries:
            if isinstance(entry, str):
                entry = {"phrase": entry}
            if not isinstance(entry, dict):
                continue
            phrase = _phrase(entry.get("phrase"))
            if phrase is not None:
                strength = _strength(entry.get("strength"))
                found = merge_concepts(found, [ConceptPhrase(phrase, polarity, strength)])
    return found[:MAX_CONCEPTS]


def parse_model_output(output: str) -> list[ConceptPhrase] | None:
    """Concepts of the model's raw output; None when it holds no valid, non-empty answer."""
    answer = first_json_object(output)
    if answer is None:
        return None
    return concepts_from_json(answer) or None


class _LRU:
    """A bounded, thread-safe least-recently-used map (RPC threads share one rewriter)."""

    _MISSING = object()

    def __init__(self, size: int) -> None:
        self.size = size
        self._data: OrderedDict[tuple[str, str], Any] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[str, str]) -> Any:
        with self._lock:
            value = self._data.get(key, self._MISSING)
            if value is not self._MISSING:
                self._data.move_to_end(key)
            return value

    def put(self, key: tuple[str, str], value: Any) -> None:
        if self.size <= 0:
            return
        with self._lock:
            self._data[key] = value
            self._data.move_to_end(key)
            while len(self._data) > self.size:
                self._data.popitem(last=False)

    def __len__(self) -> int:
        return len(self._data)


class GenerativeRewriter:
    """Descriptions -> concepts through a local Hugging Face instruction model (causal or
    seq2seq), validated, cached, within a time budget, else the fallback extractor's."""

    def __init__(self, model_dir: str, fallback: Extractor | None = None, *,
                 budget_ms: float = 1500.0, cache_size: int = 10_000,
                 max_new_tokens: int = 192, device: str | None = None) -> None:
        # Imported here so the pure output parser above stays importable without loading torch.
        import torch
        from transformers import (
            AutoConfig,
            AutoModelForCausalLM,
            AutoModelForSeq2SeqLM,
            AutoTokenizer,
        )

        from interest_server.model.encoder_weights import model_id_for

        config = AutoConfig.from_pretrained(model_dir, local_files_only=True)
        self._seq2seq = bool(getattr(config, "is_encoder_decoder", False))
        model_cls = AutoModelForSeq2SeqLM if self._seq2seq else AutoModelForCausalLM
        self._torch = torch
        self._tokenizer: Any = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
        # eval(): no dropout, so the same description always gives the same answer, which is
        # what makes caching it sound.
        self._model: Any = model_cls.from_pretrained(model_dir, local_files_only=True).eval()
        self._model.to(torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu")))
        self._max_new_tokens = max_new_tokens
        self.model_id = model_id_for(model_dir)
        self._init_policy(fallback, budget_ms, cache_size)
        kind = "seq2seq" if self._seq2seq else "causal"
        log.info("concept model %s loaded from %s (%s)", self.model_id, model_dir, kind)

    def _init_policy(self, fallback: Extractor | None, budget_ms: float, cache_size: int) -> None:
        """What does not depend on the weights (a test's fake model calls only this)."""
        self.fallback: Extractor = fallback or parse_concepts
        self.budget_s = budget_ms / 1000.0
        self._cache = _LRU(cache_size)

    def _prompt(self, text: str) -> str:
        prompt = build_prompt(text)
        # Instruction-tuned causal models expect their chat format; seq2seq models take raw text.
        if not self._seq2seq and getattr(self._tokenizer, "chat_template", None):
            return self._tokenizer.apply_chat_template(
                [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True
            )
        return prompt

    def _generate(self, prompt: str) -> str:
        encoded = self._tokenizer(prompt, return_tensors="pt", truncation=True)
        # Only ids and mask: generate() rejects extras some tokenizers add (token_type_ids).
        inputs = {k: encoded[k].to(self._model.device) for k in ("input_ids", "attention_mask")}
        pad = self._tokenizer.pad_token_id
        if pad is None:
            pad = self._tokenizer.eos_token_id
        # max_time stops generation between tokens once the budget is spent (the prompt's
        # forward pass is not interrupted); what was generated by then comes back.
        budget = {"max_time": self.budget_s} if self.budget_s > 0 else {}
        with self._torch.inference_mode():
            out = self._model.generate(**inputs, max_new_tokens=self._max_new_tokens,
                                       do_sample=False, pad_token_id=pad, **budget)
        if not self._seq2seq:  # a causal model returns the prompt too; keep only what it added
            out = out[:, inputs["input_ids"].shape[1] :]
        return self._tokenizer.decode(out[0], skip_special_tokens=True)

    def rewrite(self, text: str) -> list[ConceptPhrase]:
        """Concepts as the model states them in JSON; the fallback extractor's when it gives no
        valid answer within the budget."""
        normalised = normalise_text(text)
        if not normalised:
            return []
        key = (self.model_id, normalised)
        cached = self._cache.get(key)
        if cached is not _LRU._MISSING:
            metrics.CONCEPT_MODEL_CALLS.labels("cache_hit").inc()
            log.debug("concept model: cache hit (%d concepts)", len(cached or ()))
            return list(cached) if cached else self.fallback(text)
        start = time.perf_counter()
        output = self._generate(self._prompt(normalised))
        elapsed = time.perf_counter() - start
        found = parse_model_output(output)
        if found is not None:
            outcome = "json"
        elif self.budget_s > 0 and elapsed >= self.budget_s:
            outcome = "timeout_fallback"
        else:
            outcome = "invalid_fallback"
        # A slow answer may be quick next time (load), so only a complete one is remembered;
        # an invalid one is (greedy decoding would give it again), as None.
        if outcome != "timeout_fallback":
            self._cache.put(key, tuple(found) if found else None)
        metrics.CONCEPT_MODEL_CALLS.labels(outcome).inc()
        log.debug("concept model: %s in %.0f ms (%d concepts)", outcome, elapsed * 1000,
                  len(found or ()))
        return found if found is not None else self.fallback(text)
