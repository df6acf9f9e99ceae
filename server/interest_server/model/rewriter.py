"""Optional generative rewriter: a local language model restates a description as +/- concepts."""

from __future__ import annotations

import logging
import re
from dataclasses import replace
from typing import Any

from interest_server.model.concepts import ConceptPhrase, Polarity, merge_concepts, parse_concepts

log = logging.getLogger(__name__)

# The model says nothing about strength; a phrase the rule parser also found keeps the parser's
# weight, any other gets this one (a plain "like"/"dislike").
REWRITER_WEIGHT = 0.8

# One worked example: small instruction models (flan-t5) follow a shown format far better than a
# described one.
PROMPT = (
    "List the movie preferences in the description, one per line. Start a line with '+' for "
    "something the person likes and '-' for something they dislike.\n\n"
    "Description: I love mystery films, but I can't stand romance or horror.\n"
    "+ mystery films\n- romance\n- horror\n\n"
    "Description: {text}\n"
)

# A sign opens a concept at the start of a line or after whitespace, so the hyphen inside
# "sci-fi" is not one; seq2seq models often put every "+ x - y" on one line.
_SIGN = re.compile(r"(?:^|(?<=\s))([+\-\u2212\u2013\u2022*])(?=[^\S\n]*\S)", re.MULTILINE)
_POLARITY = {"+": Polarity.POSITIVE, "-": Polarity.NEGATIVE, "\u2212": Polarity.NEGATIVE,
             "\u2013": Polarity.NEGATIVE}
_TRIM = " \t\r\n.,;:!?\"'`()[]{}"


def parse_rewriter_output(output: str) -> list[ConceptPhrase]:
    """Concepts from lines "+ phrase" / "- phrase"; anything else is ignored, the last line wins."""
    signs = list(_SIGN.finditer(output))
    found: list[ConceptPhrase] = []
    for sign, following in zip(signs, signs[1:] + [None], strict=False):
        polarity = _POLARITY.get(sign.group(1))
        end = following.start() if following else len(output)
        # Only the first line belongs to the concept: prose after it is the model rambling.
        text = output[sign.end() : end].strip().split("\n", 1)[0]
        phrase = " ".join(text.lower().split()).strip(_TRIM)
        if polarity is None or not phrase:  # bullets ("*", "•") carry no polarity
            continue
        found = merge_concepts(found, [ConceptPhrase(phrase, polarity, REWRITER_WEIGHT)])
    return found


class GenerativeRewriter:
    """Rewrites descriptions with a local Hugging Face model (seq2seq like flan-t5, or causal)."""

    def __init__(self, model_dir: str, max_new_tokens: int = 64) -> None:
        # Imported here so the pure output parser above stays importable without loading torch.
        import torch
        from transformers import (
            AutoConfig,
            AutoModelForCausalLM,
            AutoModelForSeq2SeqLM,
            AutoTokenizer,
        )

        config = AutoConfig.from_pretrained(model_dir, local_files_only=True)
        self._seq2seq = bool(getattr(config, "is_encoder_decoder", False))
        model_cls = AutoModelForSeq2SeqLM if self._seq2seq else AutoModelForCausalLM
        self._torch = torch
        self._tokenizer: Any = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
        # eval(): no dropout, so the same description always gives the same concepts.
        self._model: Any = model_cls.from_pretrained(model_dir, local_files_only=True).eval()
        self._max_new_tokens = max_new_tokens
        kind = "seq2seq" if self._seq2seq else "causal"
        log.info("rewriter loaded from %s (%s)", model_dir, kind)

    def _prompt(self, text: str) -> str:
        prompt = PROMPT.format(text=" ".join(text.split()))
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
        with self._torch.inference_mode():
            out = self._model.generate(
                **inputs, max_new_tokens=self._max_new_tokens, do_sample=False, pad_token_id=pad
            )
        if not self._seq2seq:  # a causal model returns the prompt too; keep only what it added
            out = out[:, inputs["input_ids"].shape[1] :]
        return self._tokenizer.decode(out[0], skip_special_tokens=True)

    def rewrite(self, text: str) -> list[ConceptPhrase]:
        """Concepts as the model restates them; the rule parser's when the model gives none."""
        if not text.strip():
            return []
        rules = parse_concepts(text)
        found = parse_rewriter_output(self._generate(self._prompt(text)))
        if not found:
            log.debug("rewriter output held no concepts; using the rule parser")
            return rules
        weights = {c.phrase: c.weight for c in rules}
        return [replace(c, weight=weights.get(c.phrase, c.weight)) for c in found]
