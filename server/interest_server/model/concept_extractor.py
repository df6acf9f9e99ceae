"""The learned concept extractor: a description -> liked and disliked concept phrases.

The encoder's token states go through the concept head (model/concept_head.py), whose BIO tags
are decoded into spans (model/concept_spans.py). Catalog-independent: it reads how a preference is
stated, not which genres exist.
"""

from __future__ import annotations

import hashlib
import re
import threading
from importlib import resources
from pathlib import Path

import numpy as np
import torch

from interest_server.model.concept_head import char_ids, load_head
from interest_server.model.concept_spans import TaggedSpan, decode, like_margins, normalise_phrase
from interest_server.model.concepts import ConceptPhrase, merge_concepts
from interest_server.model.encoder import TextEncoder

HEAD_RESOURCE = "concept_head/concept-head.safetensors"
MIN_WEIGHT = 0.05
# Sentence ends a long text is cut at, so no part of it is silently truncated away.
_SENTENCE_END = re.compile(r"(?<=[.!?;。！？；\n])\s*")
_SPACE = re.compile(r"\s+")


class HeadMismatch(ValueError):
    """The head file was trained on another encoder than the one in use."""


def default_head_path() -> Path:
    """The head shipped in the package (trained on the default encoder)."""
    return Path(str(resources.files("interest_server.model").joinpath(HEAD_RESOURCE)))


class ConceptExtractor:
    """Spans, polarity and strength from a learned head on the encoder's token states."""

    def __init__(self, encoder: TextEncoder, head_path: str | Path | None = None) -> None:
        path = Path(head_path) if head_path else default_head_path()
        self.encoder = encoder
        self.head, self.metadata = load_head(path)
        trained_on = self.metadata.get("encoder_model_id")
        dim = int(self.head.sizes["dim"])
        if trained_on != encoder.model_id or dim != encoder.dim:
            raise HeadMismatch(
                f"concept head {path} was trained on encoder {trained_on!r} (dim {dim}), but the "
                f"encoder in use is {encoder.model_id!r} (dim {encoder.dim}); train a head for "
                f"it with `interest-server train-concepts --model-dir DIR --out FILE` and pass "
                f"that file as the concept head path")
        self.version = "concept-head:" + hashlib.sha256(path.read_bytes()).hexdigest()[:12]
        self._buckets = int(self.head.sizes["char_buckets"])
        self._lock = threading.Lock()  # the head is small; one lock keeps torch state simple

    def extract(self, text: str) -> list[ConceptPhrase]:
        """Concept phrases of a description, each phrase once (a restated phrase keeps the
        later reading, as merge_concepts does)."""
        found: list[ConceptPhrase] = []
        for span in self.spans(text):
            phrase = normalise_phrase(text[span.start : span.end])
            if phrase:
                weight = float(np.clip(span.strength, MIN_WEIGHT, 1.0))
                found = merge_concepts(found, [ConceptPhrase(phrase, span.polarity, weight)])
        return found

    def spans(self, text: str) -> list[TaggedSpan]:
        """Decoded spans with character offsets into `text`."""
        if not text.strip():
            return []
        windows = self._windows(text)
        states = self.encoder.token_states([text[s:e] for s, e in windows])
        out: list[TaggedSpan] = []
        for (base, end), (tokens, offsets) in zip(windows, states, strict=True):
            if not offsets:
                continue
            piece = text[base:end]
            tags, strength, margins = self.tag(piece, tokens, offsets)
            out.extend(TaggedSpan(s.start + base, s.end + base, s.polarity, s.strength)
                       for s in decode(piece, offsets, tags, strength, margins))
        return out

    def tag(self, text: str, tokens: np.ndarray,
            offsets: list[tuple[int, int]]) -> tuple[list[int], list[float], list[float]]:
        """(tag id, strength, like-margin) per token of one text, from its token states; the
        margins give a decoded span its polarity (concept_spans.decode)."""
        chars = char_ids(text, offsets, self._buckets)
        with self._lock, torch.inference_mode():
            logits, strength = self.head(torch.from_numpy(tokens)[None],
                                         torch.from_numpy(chars)[None],
                                         torch.tensor([len(offsets)]))
        return (logits[0].argmax(-1).tolist(), strength[0].tolist(),
                like_margins(logits[0].softmax(-1).tolist()))

    def _windows(self, text: str) -> list[tuple[int, int]]:
        """Character ranges of text the encoder can take whole: the text itself when it fits,
        else its sentences (packed while they fit), a sentence too long cut in halves at a
        space (or mid-way when it has none) until each fits."""
        if self._fits(text):
            return [(0, len(text))]
        cuts = [m.end() for m in _SENTENCE_END.finditer(text) if 0 < m.end() < len(text)]
        bounds = [0, *cuts, len(text)]
        pieces: list[tuple[int, int]] = []
        for start, end in zip(bounds, bounds[1:], strict=False):
            pieces.extend(self._split(text, start, end))
        windows: list[tuple[int, int]] = []
        for start, end in pieces:  # pack neighbouring sentences back while they fit
            if windows and self._fits(text[windows[-1][0] : end]):
                windows[-1] = (windows[-1][0], end)
            else:
                windows.append((start, end))
        return windows

    def _split(self, text: str, start: int, end: int) -> list[tuple[int, int]]:
        if end - start <= 1 or self._fits(text[start:end]):
            return [(start, end)]
        middle = (start + end) // 2
        spaces = [m.start() for m in _SPACE.finditer(text, start, end) if m.start() > start]
        if spaces:
            middle = min(spaces, key=lambda i: abs(i - middle))
        return self._split(text, start, middle) + self._split(text, middle, end)

    def _fits(self, text: str) -> bool:
        # A short text cannot hold too many tokens (WordPiece tokens cover at least a character;
        # half the limit leaves room for tokenizers with zero-width pieces), so it skips the
        # tokenizer; longer ones are counted.
        limit = self.encoder.max_seq_length - 2
        if len(text) <= limit // 2:
            return True
        return self.encoder.count_tokens(text) <= limit
