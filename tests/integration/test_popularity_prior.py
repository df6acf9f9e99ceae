"""The default model's popularity prior over a real port, and the online replay's arithmetic
through a real server."""

from __future__ import annotations

import math

import pytest
from interest.v1 import interest_pb2 as pb
from interest_server.model.encoder import TextEncoder
from interest_server.offline.online_replay import ReplayEvent, TimeSplit, replay_default
from interest_server.recommend.ranking import POPULAR_NOW

from tests.integration.conftest import MOVIES, event, settings_for


@pytest.fixture
def server_overrides() -> dict[str, object]:
    # No concepts are stated here: the rules parser spares loading the concept head.
    return {"concept_extractor": "rules"}


def _ids(resp: pb.RecommendResponse) -> list[str]:
    return [i.item_id for i in resp.items]


def _recommend(stub, user: str, w: float | None, k: int = 5  # noqa: ANN001
               ) -> pb.RecommendResponse:
    options = pb.RecommendOptions()
    if w is not None:
        options.popularity_weight = w
    return stub.Recommend(pb.RecommendRequest(user_id=user, k=k, options=options))


def test_a_very_popular_item_beats_a_slightly_more_similar_one_only_with_the_prior(
        stub, catalog) -> None:  # noqa: ANN001
    stub.IngestEvents(pb.EventBatch(events=[event("e0", "fan", "1", ts=1_000_000)]))
    plain = _ids(_recommend(stub, "fan", 0.0))
    similar, less = plain[0], plain[2]  # both close to the liked film; `similar` closer
    # Thirty other users make `less` very popular; `similar` has no event at all.
    stub.IngestEvents(pb.EventBatch(events=[event(f"p{i}", f"crowd{i}", less, ts=1_000_000 + i)
                                            for i in range(30)]))
    without = _recommend(stub, "fan", 0.0)
    assert without.strategy == "behaviour"
    assert _ids(without).index(similar) < _ids(without).index(less)
    with_prior = _recommend(stub, "fan", 0.5, k=2)
    assert with_prior.strategy == "behaviour"
    assert _ids(with_prior) == [less, similar]
    # Behaviour alone would not list `less` in the top 2: its first reason says why it is there;
    # `similar` keeps its own ("because you liked ...").
    top, second = with_prior.items
    assert top.reasons[0].kind == pb.REASON_KIND_POPULAR and top.reasons[0].text == POPULAR_NOW
    assert top.reasons[0].contribution == pytest.approx(0.5)
    assert [r.kind for r in second.reasons] == [pb.REASON_KIND_RECENT_ITEM]
    # The server default (Settings.popularity_weight > 0) applies the prior too.
    assert _ids(_recommend(stub, "fan", None)).index(less) < \
        _ids(_recommend(stub, "fan", None)).index(similar)


def test_popularity_weight_out_of_range_is_invalid(stub, catalog) -> None:  # noqa: ANN001
    import grpc

    with pytest.raises(grpc.RpcError) as err:
        _recommend(stub, "fan", 1.5)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "popularity_weight" in err.value.details()


def test_online_replay_scores_each_event_before_ingesting_it(
        redis_client, redis_server: str, encoder: TextEncoder) -> None:  # noqa: ANN001
    items = [{"item_id": i, "text": f"{title}. Genres: {', '.join(genres)}",
              "attributes": {"genre": genres}} for i, title, genres in MOVIES]
    # "all" consumed every film but 30 in the past: its next film is certain (rank 0, hit).
    # "again" re-watches film 5 later: consumed films are excluded, so it cannot be hit.
    history = [ReplayEvent("all", str(i), 100 + i, 5.0) for i in range(1, 28)]
    history += [ReplayEvent("again", "5", 150, 4.0)]
    valid = [ReplayEvent("all", "28", 200, 5.0), ReplayEvent("all", "29", 201, 5.0)]
    test = [ReplayEvent("all", "30", 300, 5.0), ReplayEvent("again", "5", 301, 4.0)]
    split = TimeSplit(300, history, valid, test, len(test))
    run = replay_default(settings_for(redis_server), items, split, weights=(0.0, 0.5),
                         progress=False, encoder=encoder)
    # Validation: "all" has 3 unseen films, then 2; every weight lists the right one in 3.
    assert set(run.valid) == {"0", "0.5", "chosen"}
    assert run.valid["0"]["hr@10"] == 1.0 and run.valid["0"]["events"] == 2
    assert run.valid["chosen"]["popularity_weight"] in (0.0, 0.5)
    # Popularity, w = 0, the chosen w, and the server default where it is none of those.
    assert {"popularity (server's decayed list)", "default, popularity_weight 0"} < set(run.test)
    assert 3 <= len(run.test) <= 4
    for metrics in run.test.values():
        assert metrics["events"] == 2
        assert metrics["hr@10"] == pytest.approx(0.5)  # "all" hit at rank 0, "again" missed
        assert metrics["ndcg@10"] == pytest.approx(0.5 * 1.0 / math.log2(2))
