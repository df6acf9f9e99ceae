"""The concept evaluation's pure parts: per-row metrics, the groups, the lowest-rated genre."""

from __future__ import annotations

import pytest
from interest_server.offline.concept_eval import (
    NEGATIVE,
    POSITIVE,
    lowest_rated_genre,
    row_metrics,
)
from interest_server.offline.eval_concepts import aggregate, summarise, summary_table
from interest_server.offline.movielens import Interaction

GENRES = {"a": {"Horror"}, "b": {"Comedy"}, "c": {"Comedy", "Romance"}, "d": {"Drama"},
          "e": {"War", "Drama"}}


def rated(*pairs: tuple[str, float]) -> list[Interaction]:
    return [Interaction("u", item, rating, n) for n, (item, rating) in enumerate(pairs)]


def test_row_metrics_counts_items_share_inversions_and_misses() -> None:
    top = [{"Mystery"}, {"Mystery", "Romance"}, {"Drama"}, {"Romance"}]
    # Liked Mystery read right, disliked Romance read as a like: one inversion, one miss.
    got = row_metrics([(POSITIVE, ("Mystery",)), (POSITIVE, ("Romance",))], top,
                      like=["Mystery"], dislike=["Romance"])
    assert got == {"returned": 4, "disliked_items": 2, "liked_share": 0.5, "inversions": 1,
                   "misses": 1}
    # A liked value stored as a dislike is an inversion too; a concept without links is neither.
    got = row_metrics([(NEGATIVE, ("Drama", "War")), (POSITIVE, ())], top,
                      like=["Drama"], dislike=["Horror"])
    assert (got["inversions"], got["misses"], got["disliked_items"]) == (1, 2, 0)
    assert got["liked_share"] == 0.25


def test_row_metrics_all_right_and_without_likes() -> None:
    got = row_metrics([(NEGATIVE, ("Horror",))], [{"Comedy"}] * 10, like=[], dislike=["Horror"])
    assert got == {"returned": 10, "disliked_items": 0, "liked_share": None, "inversions": 0,
                   "misses": 0}
    # An empty list has no share, and nothing linked misses every label.
    got = row_metrics([], [], like=["Comedy"], dislike=["Horror"])
    assert (got["liked_share"], got["misses"], got["inversions"]) == (None, 2, 0)


def test_lowest_rated_genre_by_mean_rating() -> None:
    counts = {"Horror": 5, "Comedy": 50, "Romance": 40, "Drama": 60, "War": 3}
    # Comedy: (4 + 2) / 2 = 3; Romance 2; Horror 5: Romance is the lowest.
    assert lowest_rated_genre(rated(("a", 5), ("b", 4), ("c", 2)), GENRES, counts) == "Romance"
    assert lowest_rated_genre(rated(("a", 1), ("b", 4)), GENRES, counts) == "Horror"
    assert lowest_rated_genre([], GENRES, counts) is None
    assert lowest_rated_genre(rated(("zzz", 1)), GENRES, counts) is None


def test_lowest_rated_genre_ties_go_to_the_rarest_then_the_name() -> None:
    counts = {"Horror": 5, "Comedy": 50, "Romance": 40, "Drama": 60, "War": 3}
    # Drama and War both 2.0: War has fewer catalog items.
    assert lowest_rated_genre(rated(("e", 2), ("b", 4)), GENRES, counts) == "War"
    # Comedy and Romance both 3.0, Romance the rarer.
    assert lowest_rated_genre(rated(("c", 3)), GENRES, counts) == "Romance"
    assert lowest_rated_genre(rated(("c", 3)), GENRES, {"Comedy": 1, "Romance": 9}) == "Comedy"
    # Equal counts: by name, so the choice never depends on dict order.
    assert lowest_rated_genre(rated(("c", 3)), GENRES, {"Comedy": 7, "Romance": 7}) == "Comedy"


def row(lang: str, disliked: int, share: float | None, inversions: int = 0,
        misses: int = 0) -> dict:
    return {"lang": lang, "disliked_items": disliked, "liked_share": share,
            "inversions": inversions, "misses": misses}


def test_aggregate_and_language_groups() -> None:
    rows = [row("en", 0, 1.0), row("en", 3, 0.5, inversions=1), row("en", 0, None, misses=2),
            row("zh", 1, 0.6, misses=1), row("fr", 0, 0.9)]
    summary = summarise(rows)
    assert list(summary) == ["overall", "English", "non-English", "lang=en", "lang=fr",
                             "lang=zh"]
    assert summary["overall"] == {
        "rows": 5, "lists_with_disliked": 2, "disliked_list_share": 0.4, "disliked_items": 4,
        "rows_with_likes": 4, "mean_liked_share": pytest.approx(0.75), "inversions": 1,
        "misses": 3}
    assert summary["English"] == summary["lang=en"]
    assert summary["English"]["mean_liked_share"] == pytest.approx(0.75)
    assert summary["non-English"]["rows"] == 2
    assert summary["non-English"]["mean_liked_share"] == pytest.approx(0.75)
    assert summary["lang=zh"]["lists_with_disliked"] == 1
    # Only English rows: no non-English group; no likes at all: no share.
    assert list(summarise([row("en", 0, None)])) == ["overall", "English", "lang=en"]
    assert aggregate([row("en", 0, None)])["mean_liked_share"] is None
    table = summary_table(summary)
    assert "| overall | 5 | 2 | 4 | 0.750 | 1 | 3 |" in table
    assert "| **target** | - | 0 | 0 | >= 0.9 | 0 | - |" in table
