"""Table-driven tests of the rule-based concept parser and of merging concept lists."""

from __future__ import annotations

import pytest
from interest_server.model.concepts import ConceptPhrase, Polarity, merge_concepts, parse_concepts

P, N = Polarity.POSITIVE, Polarity.NEGATIVE

# The texts of ../shared/eval/concept_probes.json, copied so the test stands alone, with the
# phrases the parser must find.
PROBES: list[tuple[str, set[tuple[str, Polarity]]]] = [
    ("I love mystery films, I hate romance", {("mystery films", P), ("romance", N)}),
    ("Big fan of science fiction; no horror please.", {("science fiction", P), ("horror", N)}),
    ("Westerns and war films are my thing. Musicals bore me.",
     {("westerns", P), ("war films", P), ("musicals", N)}),
    ("I enjoy documentaries but I can't stand action movies.",
     {("documentaries", P), ("action movies", N)}),
    ("Romantic comedies, always. Never thrillers.", {("romantic comedies", P), ("thrillers", N)}),
    ("Film noir and gritty crime stories.", {("film noir", P), ("gritty crime stories", P)}),
    ("Anything but horror.", {("horror", N)}),
    ("Fantasy adventures are great; dramas are too slow for me.",
     {("fantasy adventures", P), ("dramas", N)}),
    ("I like thrillers, but not the horror kind.", {("thrillers", P), ("horror", N)}),
    ("Animated movies for the whole family. We avoid war movies.",
     {("animated movies for the whole family", P), ("war movies", N)}),
    ("I'm not a fan of comedies. Give me a good drama.", {("comedies", N), ("drama", P)}),
    ("Space battles and aliens! I don't like musicals or romance.",
     {("space battles", P), ("aliens", P), ("musicals", N), ("romance", N)}),
]

CASES: list[tuple[str, set[tuple[str, Polarity]]]] = [
    # positive markers
    ("I like comedies", {("comedies", P)}),
    ("I love horror movies", {("horror movies", P)}),
    ("I really love horror movies", {("horror movies", P)}),
    ("I enjoy westerns", {("westerns", P)}),
    ("I'm into anime", {("anime", P)}),
    ("I am into k-dramas", {("k-dramas", P)}),
    ("I'm a fan of musicals", {("musicals", P)}),
    ("Big fan of Pixar", {("pixar", P)}),
    ("I'm a huge fan of space operas", {("space operas", P)}),
    ("I prefer documentaries", {("documentaries", P)}),
    ("I adore period dramas", {("period dramas", P)}),
    ("Heist movies are my thing", {("heist movies", P)}),
    ("Noir is my thing", {("noir", P)}),
    ("Westerns, always", {("westerns", P)}),
    ("Give me a good mystery", {("mystery", P)}),
    ("Show me some comedies", {("comedies", P)}),
    ("Comedies are great", {("comedies", P)}),
    ("Thrillers are really great", {("thrillers", P)}),
    ("Documentaries are the best", {("documentaries", P)}),
    ("The Godfather is my favorite", {("godfather", P)}),
    ("My favourite genre is film noir", {("film noir", P)}),
    ("I would like more documentaries", {("documentaries", P)}),
    ("I kind of like westerns", {("westerns", P)}),
    ("I don't mind musicals", {("musicals", P)}),
    ("More comedies please", {("comedies", P)}),
    ("Westerns, I love them", {("westerns", P)}),
    ("She loves cartoons", {("cartoons", P)}),
    ("My son likes cartoons", {("cartoons", P)}),
    ("Love stories and comedies.", {("love stories", P), ("comedies", P)}),
    ("I love love stories", {("love stories", P)}),
    ("I love sci-fi", {("sci-fi", P)}),
    ("I LOVE Sci-Fi!!!", {("sci-fi", P)}),
    ("I love mystery films.", {("mystery films", P)}),
    # negative markers
    ("I hate romance", {("romance", N)}),
    ("I dislike slapstick", {("slapstick", N)}),
    ("I can't stand gore", {("gore", N)}),
    ("I can\u2019t stand gore", {("gore", N)}),
    ("I cannot stand gore", {("gore", N)}),
    ("I can not stand gore", {("gore", N)}),
    ("I'm not a fan of horror", {("horror", N)}),
    ("I don't like horror", {("horror", N)}),
    ("I do not like horror", {("horror", N)}),
    ("I dont like horror", {("horror", N)}),
    ("I really don't like horror", {("horror", N)}),
    ("I don't really like horror", {("horror", N)}),
    ("He doesn't like musicals", {("musicals", N)}),
    ("Avoid horror", {("horror", N)}),
    ("We avoid war movies", {("war movies", N)}),
    ("No horror", {("horror", N)}),
    ("No horror please", {("horror", N)}),
    ("No more zombies please!", {("zombies", N)}),
    ("Never thrillers", {("thrillers", N)}),
    ("Horror, never!", {("horror", N)}),
    ("Romance? Never.", {("romance", N)}),
    ("Anything but westerns", {("westerns", N)}),
    ("I like anything but horror", {("horror", N)}),
    ("Everything except horror", {("horror", N)}),
    ("Give me anything except horror or gore", {("horror", N), ("gore", N)}),
    ("Musicals bore me", {("musicals", N)}),
    ("Opera bores me", {("opera", N)}),
    ("Musicals bore me too", {("musicals", N)}),
    ("Dramas are too slow for me", {("dramas", N)}),
    ("Slashers are too violent for me", {("slashers", N)}),
    ("Dramas aren't my thing", {("dramas", N)}),
    ("Horror is not my cup of tea", {("horror", N)}),
    ("Reality shows are boring", {("reality shows", N)}),
    ("Not really into sports movies", {("sports movies", N)}),
    ("Nothing scary", {("scary", N)}),
    ("I loathe remakes", {("remakes", N)}),
    # clause boundaries, lists and negation scope
    ("I don't like musicals or romance", {("musicals", N), ("romance", N)}),
    ("I don't like musicals, romance or horror", {("musicals", N), ("romance", N), ("horror", N)}),
    ("I hate horror, gore and slashers", {("horror", N), ("gore", N), ("slashers", N)}),
    ("I love comedies and dramas", {("comedies", P), ("dramas", P)}),
    ("I love comedies; I hate dramas", {("comedies", P), ("dramas", N)}),
    ("I like horror but hate gore", {("horror", P), ("gore", N)}),
    ("I love horror and gore but not slashers", {("horror", P), ("gore", P), ("slashers", N)}),
    ("I hate horror but comedies are great", {("horror", N), ("comedies", P)}),
    ("I like comedies, though dramas bore me", {("comedies", P), ("dramas", N)}),
    ("Although I like action, I hate gore", {("action", P), ("gore", N)}),
    ("I like action. Not a fan of gore though.", {("action", P), ("gore", N)}),
    ("Give me comedies and dramas, not horror", {("comedies", P), ("dramas", P), ("horror", N)}),
    ("I hate romance. Comedies and cartoons.", {("romance", N), ("comedies", P), ("cartoons", P)}),
    ("Comedies without romance", {("comedies", P), ("romance", N)}),
    ("I'd rather watch comedies than dramas", {("comedies", P), ("dramas", N)}),
    ("I like comedies more than dramas", {("comedies", P), ("dramas", N)}),
    ("Comedies yes, horror no", {("comedies", P), ("horror", N)}),
    ("Likes: comedies, dramas. Dislikes: horror, gore.",
     {("comedies", P), ("dramas", P), ("horror", N), ("gore", N)}),
    ("I'm into k-dramas & anime", {("k-dramas", P), ("anime", P)}),
    ("Documentaries (especially nature) and biopics",
     {("documentaries", P), ("nature", P), ("biopics", P)}),
    ("We love animated films, our kids adore Pixar, but we avoid anything scary",
     {("animated films", P), ("pixar", P), ("anything scary", N)}),
    # Chinese
    ("我喜欢科幻电影", {("科幻电影", P)}),
    ("我讨厌恐怖片", {("恐怖片", N)}),
    ("我不喜欢恐怖片", {("恐怖片", N)}),
    ("我不太喜欢恐怖片", {("恐怖片", N)}),
    ("我爱动作片", {("动作片", P)}),
    ("我不爱看恐怖片", {("恐怖片", N)}),
    ("我不想看恐怖片", {("恐怖片", N)}),
    ("我讨厌爱情片", {("爱情片", N)}),
    ("我喜欢爱情片", {("爱情片", P)}),
    ("爱情片和喜剧", {("爱情片", P), ("喜剧", P)}),
    ("我喜欢科幻电影，讨厌恐怖片", {("科幻电影", P), ("恐怖片", N)}),
    ("我喜欢喜剧，但是不喜欢恐怖片。", {("喜剧", P), ("恐怖片", N)}),
    ("喜欢喜剧但不喜欢恐怖片", {("喜剧", P), ("恐怖片", N)}),
    ("我不喜欢爱情片和恐怖片", {("爱情片", N), ("恐怖片", N)}),
    ("我喜欢动作片、科幻片；讨厌歌舞片", {("动作片", P), ("科幻片", P), ("歌舞片", N)}),
    ("恐怖片不看", {("恐怖片", N)}),
    ("除了恐怖片，什么都喜欢", {("恐怖片", N)}),
    ("我们很喜欢动画片！", {("动画片", P)}),
    ("我最喜欢超级英雄片", {("超级英雄片", P)}),
    ("我喜欢太空片和真人秀", {("太空片", P), ("真人秀", P)}),
    ("恐怖片我都不看", {("恐怖片", N)}),
    ("我真的很讨厌歌舞片", {("歌舞片", N)}),
    # edge cases
    ("", set()),
    ("   \n\t ", set()),
    ("...", set()),
    ("!!! ;; ,,, ???", set()),
    ("I love movies", set()),
    ("I like them", set()),
    ("and but or", set()),
    ("I like horror. Actually, I hate horror.", {("horror", N)}),
    ("i love sci-fi. i hate sci-fi.", {("sci-fi", N)}),
    ("I hate westerns. I love westerns!", {("westerns", P)}),
]


def _pairs(text: str) -> set[tuple[str, Polarity]]:
    return {(c.phrase, c.polarity) for c in parse_concepts(text)}


@pytest.mark.parametrize(("text", "expected"), PROBES + CASES, ids=lambda v: str(v)[:48])
def test_parse_concepts(text: str, expected: set[tuple[str, Polarity]]) -> None:
    assert _pairs(text) == expected


# Probe genres, as words the phrases should carry for the catalog linker to find them.
PROBE_WORDS = [
    (["mystery"], ["romance"]),
    (["science fiction"], ["horror"]),
    (["western", "war"], ["musical"]),
    (["documentar"], ["action"]),
    (["romantic comed"], ["thriller"]),
    (["noir", "crime"], []),
    ([], ["horror"]),
    (["fantasy adventure"], ["drama"]),
    (["thriller"], ["horror"]),
    (["animated", "family"], ["war"]),
    (["drama"], ["comed"]),
    (["space", "alien"], ["musical", "romance"]),
]


@pytest.mark.parametrize(("probe", "words"), list(zip(PROBES, PROBE_WORDS, strict=True)))
def test_probe_phrases_carry_genre_words(
    probe: tuple[str, set[tuple[str, Polarity]]], words: tuple[list[str], list[str]]
) -> None:
    concepts = parse_concepts(probe[0])
    for polarity, wanted in zip((P, N), words, strict=True):
        phrases = [c.phrase for c in concepts if c.polarity == polarity]
        for word in wanted:
            assert any(word in phrase for phrase in phrases), (word, phrases)


@pytest.mark.parametrize(
    ("text", "phrase", "weight"),
    [
        ("I love horror", "horror", 1.0),
        ("I hate horror", "horror", 1.0),
        ("I can't stand horror", "horror", 1.0),
        ("Never horror", "horror", 1.0),
        ("Big fan of horror", "horror", 0.9),
        ("Horror is my thing", "horror", 0.9),
        ("Horror, always", "horror", 0.9),
        ("I like horror", "horror", 0.8),
        ("I dislike horror", "horror", 0.8),
        ("I prefer horror", "horror", 0.8),
        ("I enjoy horror", "horror", 0.8),
        ("I'm into horror", "horror", 0.8),
        ("Fan of horror", "horror", 0.8),
        ("We avoid horror", "horror", 0.8),
        ("No horror please", "horror", 0.8),
        ("I'm not a fan of horror", "horror", 0.6),
        ("Horror bores me", "horror", 0.6),
        ("Horror.", "horror", 0.5),
        ("我爱恐怖片", "恐怖片", 1.0),
        ("我讨厌恐怖片", "恐怖片", 1.0),
        ("我喜欢恐怖片", "恐怖片", 0.8),
        ("我不喜欢恐怖片", "恐怖片", 0.8),
    ],
)
def test_weights(text: str, phrase: str, weight: float) -> None:
    (concept,) = parse_concepts(text)
    assert concept.phrase == phrase
    assert concept.weight == pytest.approx(weight)


def test_list_items_inherit_the_markers_weight() -> None:
    weights = {c.phrase: c.weight for c in parse_concepts("I don't like musicals, romance or gore")}
    assert weights == {"musicals": 0.8, "romance": 0.8, "gore": 0.8}


def test_restated_phrase_keeps_first_position_and_last_polarity() -> None:
    concepts = parse_concepts("I love horror and comedies. Actually horror bores me.")
    assert [(c.phrase, c.polarity, c.weight) for c in concepts] == [
        ("horror", N, 0.6),
        ("comedies", P, 1.0),
    ]


def test_very_long_text_is_parsed_once_per_phrase() -> None:
    text = " ".join(f"I love genre{i} films, I hate topic{i}." for i in range(500)) * 4
    concepts = parse_concepts(text)
    assert len(concepts) == 1000
    assert concepts[0] == ConceptPhrase("genre0 films", P, 1.0)
    assert concepts[1] == ConceptPhrase("topic0", N, 1.0)


def test_polarity_numbers_match_the_proto() -> None:
    assert (int(Polarity.POSITIVE), int(Polarity.NEGATIVE)) == (1, 2)


def test_phrases_are_lower_case_and_trimmed() -> None:
    for concept in parse_concepts("  I LOVE   Film   Noir!!  No HORROR, please.  "):
        assert concept.phrase == concept.phrase.lower().strip()
        assert "  " not in concept.phrase
    assert _pairs("  I LOVE   Film   Noir!!  No HORROR, please.  ") == {
        ("film noir", P),
        ("horror", N),
    }


def _c(phrase: str, polarity: Polarity, weight: float = 0.8) -> ConceptPhrase:
    return ConceptPhrase(phrase, polarity, weight)


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ([], [], []),
        ([], [_c("horror", N)], [_c("horror", N)]),
        ([_c("horror", N)], [], [_c("horror", N)]),
        (  # a restated phrase keeps its place and takes the new polarity and weight
            [_c("horror", N), _c("comedy", P)],
            [_c("horror", P, 1.0)],
            [_c("horror", P, 1.0), _c("comedy", P)],
        ),
        (  # new phrases follow the old ones in their own order
            [_c("horror", N)],
            [_c("western", P), _c("drama", N), _c("horror", N, 0.6)],
            [_c("horror", N, 0.6), _c("western", P), _c("drama", N)],
        ),
        (  # within the new list the last statement wins
            [],
            [_c("drama", P), _c("drama", N, 1.0)],
            [_c("drama", N, 1.0)],
        ),
    ],
)
def test_merge_concepts(
    old: list[ConceptPhrase], new: list[ConceptPhrase], expected: list[ConceptPhrase]
) -> None:
    assert merge_concepts(old, new) == expected


def test_merge_does_not_modify_its_inputs() -> None:
    old, new = [_c("horror", N)], [_c("horror", P)]
    merge_concepts(old, new)
    assert old == [_c("horror", N)]
    assert new == [_c("horror", P)]


def test_merge_with_parsed_descriptions() -> None:
    first = parse_concepts("I love mystery films, I hate romance")
    second = parse_concepts("Romance is great actually. No horror.")
    assert [(c.phrase, c.polarity) for c in merge_concepts(first, second)] == [
        ("mystery films", P),
        ("romance", P),
        ("horror", N),
    ]
