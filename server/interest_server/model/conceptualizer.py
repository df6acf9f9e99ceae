"""Conceptual representation C_u: stated concepts with polarity, vectors and attribute links."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from interest_server.model.concepts import (
    AttrPair,
    ConceptPhrase,
    Polarity,
    merge_concepts,
    parse_concepts,
)
from interest_server.model.synonyms import EMPTY as EMPTY_SYNONYMS
from interest_server.model.synonyms import SynonymMatcher


@dataclass(frozen=True)
class StoredConcept:
    """A concept phrase with its polarity, strength and vector (from the model `model`)."""

    phrase: str
    polarity: Polarity
    weight: float
    vector: np.ndarray
    """Attention-pooled: compared with item vectors (affinity, dislike threshold)."""
    model: str
    ground_vector: np.ndarray
    """Mean-pooled: compared with attribute values to link the concept (measured best:
    bench/concept_grounding.py)."""


@dataclass(frozen=True)
class GroundedConcept:
    """A concept linked to the catalog attributes it names (possibly none)."""

    concept: StoredConcept
    links: list[tuple[AttrPair, float]] = field(default_factory=list)


class Conceptualizer:
    """Description -> concept phrases (rules, or a generative rewriter) -> concept vectors."""

    def __init__(self, embed_concepts: Callable[[list[str]], np.ndarray],
                 embed: Callable[[list[str]], np.ndarray], model_id: str,
                 rewrite: Callable[[str], list[ConceptPhrase]] | None = None, *,
                 embed_both: Callable[[list[str]], tuple[np.ndarray, np.ndarray]] | None = None,
                 ) -> None:
        """`embed_both(texts) -> (embed_concepts(texts), embed(texts))`, when given, is used
        instead of the two calls (TextEncoder.embed_both: both poolings from one forward pass)."""
        self.embed_concepts = embed_concepts
        self.embed = embed
        self.embed_both = embed_both
        self.model_id = model_id
        self.rewrite = rewrite or parse_concepts

    def encode(self, text: str) -> list[StoredConcept]:
        """Concepts stated in the text, each with its vector."""
        phrases = self.rewrite(text)
        return self.attach_vectors(phrases)

    def attach_vectors(self, phrases: Sequence[ConceptPhrase]) -> list[StoredConcept]:
        """Embed phrases, both ways: one embed_both call, or one batch each."""
        if not phrases:
            return []
        texts = [p.phrase for p in phrases]
        if self.embed_both is not None:
            vectors, ground = self.embed_both(texts)
        else:
            vectors, ground = self.embed_concepts(texts), self.embed(texts)
        return [StoredConcept(p.phrase, p.polarity, p.weight, v, self.model_id, g)
                for p, v, g in zip(phrases, vectors, ground, strict=True)]

    def merge(self, old: list[StoredConcept], new: list[StoredConcept]) -> list[StoredConcept]:
        """Merge by phrase: a phrase stated again takes its new polarity and weight."""
        merged = merge_concepts([_phrase(c) for c in old], [_phrase(c) for c in new])
        by_phrase = {c.phrase: c for c in old} | {c.phrase: c for c in new}
        return [StoredConcept(p.phrase, p.polarity, p.weight, by_phrase[p.phrase].vector,
                              by_phrase[p.phrase].model, by_phrase[p.phrase].ground_vector)
                for p in merged]

    def current(self, concepts: list[StoredConcept]) -> list[StoredConcept]:
        """Re-embed concepts stored by another model, so they share the items' space."""
        stale = [c for c in concepts if c.model != self.model_id]
        if not stale:
            return concepts
        fresh = {c.phrase: c for c in self.attach_vectors([_phrase(c) for c in stale])}
        return [fresh.get(c.phrase, c) if c.model != self.model_id else c for c in concepts]


def _phrase(c: StoredConcept) -> ConceptPhrase:
    return ConceptPhrase(c.phrase, c.polarity, c.weight)


def dumps(concepts: Sequence[StoredConcept]) -> bytes:
    """Serialise for Redis (vectors as base64 float32)."""
    return json.dumps([{
        "phrase": c.phrase, "polarity": int(c.polarity), "weight": c.weight, "model": c.model,
        "vec": _b64(c.vector), "gvec": _b64(c.ground_vector),
    } for c in concepts], separators=(",", ":")).encode()


def _b64(vec: np.ndarray) -> str:
    return base64.b64encode(np.asarray(vec, dtype="<f4").tobytes()).decode()


def _unb64(text: str) -> np.ndarray:
    return np.frombuffer(base64.b64decode(text), dtype="<f4").astype(np.float32)


def loads(raw: bytes | None) -> list[StoredConcept]:
    """Inverse of dumps; empty for None."""
    if not raw:
        return []
    return [StoredConcept(d["phrase"], Polarity(d["polarity"]), float(d["weight"]),
                          _unb64(d["vec"]), d["model"], _unb64(d["gvec"]))
            for d in json.loads(raw)]


def ground(concepts: Sequence[StoredConcept], pairs: Sequence[AttrPair], vocab: np.ndarray,
           threshold: float, margin: float, synonyms: SynonymMatcher = EMPTY_SYNONYMS
           ) -> list[GroundedConcept]:
    """Link each concept to the attribute values it names.

    A concept whose phrase contains a synonym of a catalog value is linked to that value (and
    any other value it names by synonym) with similarity 1.0, and embedding similarity is not
    consulted. Otherwise the best-matching value is linked when its cosine is >= threshold;
    further values are linked too when within `margin` of the best (e.g. "romantic comedies" ->
    Romance, Comedy).
    """
    if not concepts:
        return []
    if len(pairs) == 0:
        return [GroundedConcept(c) for c in concepts]
    sims = np.stack([c.ground_vector for c in concepts]) @ vocab.T
    known: set[AttrPair] | None = None  # built on the first synonym match only
    out = []
    for c, row in zip(concepts, sims, strict=True):
        named = synonyms.match(c.phrase)
        if named:
            known = set(pairs) if known is None else known
            named = [p for p in named if p in known]  # values no item carries link nothing
        if named:
            out.append(GroundedConcept(c, [(p, 1.0) for p in named]))
            continue
        best = float(row.max())
        links = []
        if best >= threshold:
            for j in np.argsort(-row):
                if row[j] < threshold or row[j] < best - margin:
                    break
                links.append((pairs[j], float(row[j])))
        out.append(GroundedConcept(c, links))
    return out
