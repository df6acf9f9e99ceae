"""A catalog compaction racing Recommend: UNAVAILABLE, which the real client retries."""

from __future__ import annotations

import grpc
import pytest
from interest.v1 import interest_pb2 as pb
from interest_client import client as client_mod
from interest_client.client import InterestClient
from interest_server.api.app import RunningServer
from interest_server.engine.engine import RANK_ATTEMPTS
from interest_server.recommend.item_index import IndexView

pytestmark = pytest.mark.usefixtures("catalog")


class CompactAfterView:
    """Wraps ItemIndex.view: for the next `n` views, the index really compacts (renumbering
    its rows, a new generation) right after the view is taken, as a concurrent DeleteItems
    past the tombstone threshold would. The view is then stale when the ranker uses it."""

    def __init__(self, server: RunningServer) -> None:
        self.index = server.engine.index
        self.real_view = self.index.view
        self.left = 0
        self.views = 0

    def __call__(self) -> IndexView:
        view = self.real_view()
        self.views += 1
        if self.left:
            self.left -= 1
            with self.index._lock:
                self.index._compact()
        return view


@pytest.fixture
def race(server: RunningServer, monkeypatch: pytest.MonkeyPatch) -> CompactAfterView:
    hook = CompactAfterView(server)
    monkeypatch.setattr(server.engine.index, "view", hook)
    return hook


def test_compaction_race_is_unavailable_and_transient(stub, race) -> None:  # noqa: ANN001
    race.left = RANK_ATTEMPTS  # every view of one call goes stale
    with pytest.raises(grpc.RpcError) as err:
        stub.Recommend(pb.RecommendRequest(user_id="u", k=5), timeout=30)
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "compacted" in err.value.details() and "transient" in err.value.details()
    assert race.views == RANK_ATTEMPTS
    # The race over, the same call succeeds.
    assert len(stub.Recommend(pb.RecommendRequest(user_id="u", k=5), timeout=30).items) == 5


def test_client_retries_a_compaction_race_and_succeeds(server, race,  # noqa: ANN001
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    delays: list[float] = []
    real_sleep = client_mod._sleep

    def record(seconds: float) -> None:
        delays.append(seconds)
        real_sleep(seconds)

    monkeypatch.setattr(client_mod, "_sleep", record)
    race.left = RANK_ATTEMPTS  # the first attempt fails on the server; the retry finds peace
    with InterestClient(server.target, timeout_s=30) as client:
        resp = client.recommend("u", k=5)
    assert len(resp.items) == 5
    assert len(delays) == 1  # exactly one retry
    assert race.views == RANK_ATTEMPTS + 1 and race.left == 0
