"""The generator of labelled training text for the concept extractor."""

from __future__ import annotations

import re
import time

import pytest
from interest_server.model.concepts import Polarity
from interest_server.offline import concept_generator as gen

POS, NEG = Polarity.POSITIVE, Polarity.NEGATIVE


@pytest.fixture(scope="module")
def corpus() -> list[gen.LabelledText]:
    return gen.generate(20000, seed=7)


def _labelled(t: gen.LabelledText) -> list[tuple[str, Polarity, float]]:
    return [(t.text[s.start:s.end], s.polarity, s.strength) for s in t.spans]


def test_same_seed_same_texts_other_seed_other_texts() -> None:
    assert gen.generate(300, seed=3) == gen.generate(300, seed=3)
    assert gen.generate(300, seed=3) != gen.generate(300, seed=4)


def test_spans_are_clean_inside_and_disjoint(corpus: list[gen.LabelledText]) -> None:
    for t in corpus:
        end = 0
        for s in t.spans:
            piece = t.text[s.start:s.end]
            assert piece and piece == piece.strip(), (t.text, s)
            assert end <= s.start < s.end <= len(t.text), (t.text, t.spans)
            assert s.strength in gen.STRENGTHS and s.polarity in (POS, NEG)
            end = s.end
        assert 0 <= len(t.spans) <= 5, t.text
        assert t.text == t.text.strip() and "  " not in t.text, repr(t.text)


def test_languages_polarities_and_span_counts(corpus: list[gen.LabelledText]) -> None:
    for lang in ("en", "fr", "zh"):
        spans = [s for t in corpus if t.lang == lang for s in t.spans]
        assert {s.polarity for s in spans} == {POS, NEG}, lang
        assert {s.strength for s in spans} == set(gen.STRENGTHS), lang
    assert {t.lang for t in corpus} == set(gen.LANGS)
    counts = {len(t.spans) for t in corpus}
    assert counts == {0, 1, 2, 3, 4, 5}
    only_zh = gen.generate(200, seed=1, langs={"zh": 1.0})
    assert {t.lang for t in only_zh} == {"zh"}
    with pytest.raises(ValueError):
        gen.generate(1, langs={"xx": 1.0})


def test_vocabulary_sizes() -> None:
    sizes = gen.vocabulary_sizes()
    for lang, marker_floor, topic_floor in (("en", 80, 300), ("fr", 40, 150), ("zh", 40, 150)):
        assert sizes[lang]["like"] >= marker_floor, (lang, sizes[lang])
        assert sizes[lang]["dislike"] >= marker_floor, (lang, sizes[lang])
        assert sizes[lang]["topics"] >= topic_floor, (lang, sizes[lang])
    for lang in ("es", "de"):
        assert sizes[lang]["like"] >= 10 and sizes[lang]["dislike"] >= 10


@pytest.mark.parametrize(("lang", "pattern", "labels", "topics", "text", "expected"), [
    ("en", "I prefer {0} to {1}", (gen.L8, gen.D6), [["documentaries"], ["reality TV"]],
     "I prefer documentaries to reality TV",
     [("documentaries", POS, 0.8), ("reality TV", NEG, 0.6)]),
    ("zh", "比起{0}，我更喜欢{1}", (gen.D6, gen.L8), [["恐怖片"], ["喜剧片"]],
     "比起恐怖片，我更喜欢喜剧片", [("恐怖片", NEG, 0.6), ("喜剧片", POS, 0.8)]),
    ("fr", "Je préfère {le:0} {au:1}", (gen.L8, gen.D6), [["comédies"], ["jazz"]],
     "Je préfère les comédies au jazz", [("comédies", POS, 0.8), ("jazz", NEG, 0.6)]),
    ("en", "I don't like {0}", (gen.D8,), [["horror films", "musicals"]],
     "I don't like horror films or musicals",
     [("horror films", NEG, 0.8), ("musicals", NEG, 0.8)]),
    ("en", "{0}? Love <it>", (gen.L10,), [["westerns"]], "Westerns? Love them",
     [("Westerns", POS, 1.0)]),
    ("en", "I used to love {0} but now I can't stand <it>", (gen.D10,), [["Taylor Swift"]],
     "I used to love Taylor Swift but now I can't stand her", [("Taylor Swift", NEG, 1.0)]),
    ("fr", "J'adore {le:0}", (gen.L10,), [["opéra"]], "J'adore l'opéra", [("opéra", POS, 1.0)]),
    ("fr", "Pas {de:0}", (gen.D8,), [["huîtres"]], "Pas d'huîtres", [("huîtres", NEG, 0.8)]),
    ("fr", "Je n'aime pas {le:0}", (gen.D8,), [["comédies", "films d'horreur"]],
     "Je n'aime pas les comédies ou les films d'horreur",
     [("comédies", NEG, 0.8), ("films d'horreur", NEG, 0.8)]),
    ("zh", "{0}一律不<V>", (gen.D10,), [["流浪地球"]], "《流浪地球》一律不看",
     [("流浪地球", NEG, 1.0)]),
    ("de", "Bitte <kein> {0}", (gen.D8,), [["Jazz"]], "Bitte keinen Jazz", [("Jazz", NEG, 0.8)]),
])
def test_hand_checked_templates(lang, pattern, labels, topics, text, expected) -> None:
    templates = gen.SINGLE_TEMPLATES[lang] if len(labels) == 1 else gen.PAIR_TEMPLATES[lang]
    assert (pattern, labels[0] if len(labels) == 1 else labels) in templates
    out = gen.render_template(lang, pattern, labels, topics)
    assert out.text == text
    assert _labelled(out) == expected


# (what precedes a span, lower case; the label it must carry). Each must occur in the corpus,
# so a family that silently disappears fails too.
_BEFORE = [
    ("anything but ", NEG, None), ("everything except ", NEG, None),
    ("i don't hate ", POS, 0.6), ("i wouldn't say no to ", POS, 0.6),
    ("no wonder i love ", POS, 1.0), ("i never get tired of ", POS, 1.0),
    ("i used to love ", NEG, 1.0), ("i prefer ", POS, 0.8), ("比起", NEG, 0.6),
    ("plutôt les ", POS, 0.8), ("tout sauf les ", NEG, 1.0), ("je ne déteste pas les ", POS, 0.6),
    ("我不讨厌", POS, 0.6), ("除了", NEG, 0.8), ("hard pass on ", NEG, 1.0),
    # second round: "what I don't want", bare questions asking for more, idioms, "yes but no"
    ("what i don't want is ", NEG, 0.8), ("what i can't stand is ", NEG, 1.0),
    ("know any good ", POS, 0.8), ("any good ", POS, 0.8), ("i give ", NEG, 0.8),
    ("i avoid ", NEG, None), ("yes but please no ", NEG, 0.8), ("求推荐", POS, 0.8),
    ("我不想要的是", NEG, 0.8), ("ce que je ne veux pas, c'est les ", NEG, 0.8),
    ("mais surtout pas de ", NEG, None),
]

# (a regex for what follows a span, lower case; the label it must carry): things named first,
# the verdict after them. Each must occur in the corpus. ", never" must end its clause: in
# ", never Wes Anderson" the "never" governs the next thing.
_AFTER = [
    (" is my idea of hell", NEG, 1.0), (" are my idea of hell", NEG, 1.0),
    (r", never(?! ?\w)", NEG, None),
    (" are out", NEG, 0.8), (" is out", NEG, 0.8), (r"\? only as a last resort", NEG, 0.6),
    (" send me to sleep", NEG, 0.6), (" is more my speed", POS, 0.8),
    (r"\? not a chance", NEG, 1.0),
    (r" recommendations\?", POS, 0.8), (" yes but please no ", POS, 0.8),
    (r", jamais(?! ?\w)", NEG, 1.0), (", c'est exclu", NEG, 0.8), ("直接拉黑", NEG, 1.0),
    ("免谈", NEG, 1.0), ("除非实在没别的", NEG, 0.6), ("有推荐吗", POS, 0.8),
]


@pytest.mark.parametrize(("before", "polarity", "strength"), _BEFORE)
def test_polarity_traps_are_labelled_as_a_careful_reader_would(
        corpus: list[gen.LabelledText], before: str, polarity: Polarity,
        strength: float | None) -> None:
    seen = 0
    for t in corpus:
        for s in t.spans:
            if t.text[:s.start].lower().endswith(before):
                seen += 1
                assert s.polarity == polarity, (t.text, _labelled(t))
                assert strength is None or s.strength == strength, (t.text, _labelled(t))
    assert seen >= 3, before


@pytest.mark.parametrize(("after", "polarity", "strength"), _AFTER)
def test_verdicts_after_the_thing_are_labelled_on_the_thing(
        corpus: list[gen.LabelledText], after: str, polarity: Polarity,
        strength: float | None) -> None:
    seen = 0
    for t in corpus:
        for s in t.spans:
            if re.match(after, t.text[s.end:].lower()):
                seen += 1
                assert s.polarity == polarity, (t.text, _labelled(t))
                assert strength is None or s.strength == strength, (t.text, _labelled(t))
    assert seen >= 3, after


def test_chatty_context_names_people_and_places_without_a_span(
        corpus: list[gen.LabelledText]) -> None:
    seen = 0
    for t in corpus:
        for line in gen._CHAT.get(t.lang, ()):
            at = t.text.lower().find(line.rstrip(".。").lower())
            if at >= 0:
                seen += 1
                end = at + len(line)
                assert not any(s.start < end and at < s.end for s in t.spans), (t.text, line)
    assert seen >= 300


def test_comparatives_give_like_then_mild_dislike(corpus: list[gen.LabelledText]) -> None:
    seen = 0
    for t in corpus:
        for a, b in zip(t.spans, t.spans[1:], strict=False):
            head = t.text[:a.start].lower()
            if head.endswith(("i prefer ", "i'd take ")) and \
                    t.text[a.end:b.start] in (" to ", " over "):
                seen += 1
                assert (a.polarity, b.polarity, b.strength) == (POS, NEG, 0.6), t.text
    assert seen >= 5


def test_chinese_comparative_prefers_the_second(corpus: list[gen.LabelledText]) -> None:
    seen = 0
    for t in corpus:
        if not t.text.startswith("比起"):
            continue
        for s in t.spans:
            head = t.text[:s.start]
            if re.fullmatch(r"比起[^，,。！]+[，,](我)?更(喜欢|爱)", head):
                seen += 1
                assert s.polarity == POS, t.text
            elif "更" not in head:  # the things compared against
                assert (s.polarity, s.strength) == (NEG, 0.6), t.text
    assert seen >= 3


def test_bare_lists_are_weak_likes_and_plain_statements_have_no_span(
        corpus: list[gen.LabelledText]) -> None:
    bare = [t for t in corpus if t.spans and all(s.strength == 0.5 for s in t.spans)]
    assert len(bare) > 200
    assert all(s.polarity == POS for t in bare for s in t.spans)
    said = gen.render_template("en", "I <Ved> {0} yesterday", (None,), [["sushi"]])
    assert said.text == "I had sushi yesterday" and said.spans == ()
    assert sum(1 for t in corpus if not t.spans and t.lang == "en") > 50


def test_french_spans_leave_articles_out(corpus: list[gen.LabelledText]) -> None:
    for t in corpus:
        if t.lang == "fr":
            for piece, _, _ in _labelled(t):
                assert not re.match(r"(?i)(les?|la|des|du|aux?) |l'|d'", piece), (t.text, piece)


def test_the_public_probe_meaning_is_never_generated(corpus: list[gen.LabelledText]) -> None:
    assert gen._family("mystery films") == "mystery" and gen._family("爱情电影") == "romance"
    for t in corpus:
        liked = {gen._family(p) for p, pol, _ in _labelled(t) if pol == POS}
        disliked = {gen._family(p) for p, pol, _ in _labelled(t) if pol == NEG}
        assert not ("mystery" in liked and "romance" in disliked), t.text
        assert "i love mystery films, i hate romance" not in t.text.lower()


def test_fast_enough() -> None:
    start = time.perf_counter()
    gen.generate(20000, seed=11)
    assert time.perf_counter() - start < 20  # a few seconds unloaded; loose for a shared box
