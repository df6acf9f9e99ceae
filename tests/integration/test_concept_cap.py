"""The per-user concept cap (max_concepts_per_user) over a real port: a refused call changes
nothing, and concurrent merges never exceed the cap together."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import grpc
import pytest
from interest.v1 import interest_pb2 as pb
from interest.v1 import interest_pb2_grpc
from interest_server.api.app import RunningServer
from interest_server.config import Settings

CAP = 3


@pytest.fixture
def capped(make_server) -> RunningServer:  # noqa: ANN001
    return make_server(max_concepts_per_user=CAP)


@pytest.fixture
def stub(capped: RunningServer) -> Iterator[interest_pb2_grpc.InterestServiceStub]:
    with grpc.insecure_channel(capped.target) as channel:
        yield interest_pb2_grpc.InterestServiceStub(channel)


def encode(stub, user: str, text: str, mode: int) -> pb.EncodeInterestResponse:  # noqa: ANN001
    return stub.EncodeInterest(pb.EncodeInterestRequest(user_id=user, text=text, mode=mode),
                               timeout=30)


def state(stub, user: str) -> tuple[int, list[tuple[str, int, float]]]:  # noqa: ANN001
    s = stub.GetUserState(pb.GetUserStateRequest(user_id=user), timeout=10)
    return s.version, [(c.phrase, c.polarity, round(c.weight, 4)) for c in s.concepts]


def test_merge_up_to_the_cap_then_one_more_is_refused_and_changes_nothing(stub) -> None:  # noqa: ANN001
    encode(stub, "ann", "I love westerns", pb.ENCODE_MODE_MERGE)
    full = encode(stub, "ann", "I like comedies and horror", pb.ENCODE_MODE_MERGE)
    assert [c.phrase for c in full.stored] == ["westerns", "comedies", "horror"]
    before = state(stub, "ann")

    with pytest.raises(grpc.RpcError) as err:
        encode(stub, "ann", "I like documentaries", pb.ENCODE_MODE_MERGE)
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    details = err.value.details()
    assert f"limit is {CAP}" in details and "has 3" in details and "would store 4" in details
    assert "ENCODE_MODE_REPLACE" in details
    assert state(stub, "ann") == before  # not even the version moved

    # At the cap, restating a stored phrase adds nothing and is allowed.
    restated = encode(stub, "ann", "I hate horror", pb.ENCODE_MODE_MERGE)
    assert [(c.phrase, c.polarity) for c in restated.stored][-1] == (
        "horror", pb.POLARITY_NEGATIVE)
    assert len(restated.stored) == CAP


def test_replace_stating_more_than_the_cap_is_invalid_and_changes_nothing(stub) -> None:  # noqa: ANN001
    encode(stub, "bo", "I love westerns", pb.ENCODE_MODE_REPLACE)
    before = state(stub, "bo")
    too_many = "I like westerns, comedies, horror and documentaries"
    for mode in (pb.ENCODE_MODE_REPLACE, pb.ENCODE_MODE_MERGE):
        with pytest.raises(grpc.RpcError) as err:
            encode(stub, "bo", too_many, mode)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "4 concepts" in err.value.details() and f"limit is {CAP}" in err.value.details()
        assert state(stub, "bo") == before
    # A REPLACE within the cap is the way out of a full set.
    replaced = encode(stub, "bo", "I like comedies, horror and documentaries",
                      pb.ENCODE_MODE_REPLACE)
    assert [c.phrase for c in replaced.stored] == ["comedies", "horror", "documentaries"]


def test_two_concurrent_merges_never_exceed_the_cap_together(capped, stub) -> None:  # noqa: ANN001
    """Both merges read the same stored set (one concept) before either writes, so each alone
    fits (1 + 2 = 3); together they would store 5. Exactly one must win."""
    encode(stub, "cy", "I love westerns", pb.ENCODE_MODE_REPLACE)
    conceptualizer = capped.engine.conceptualizer
    real_merge = conceptualizer.merge
    both_read = threading.Barrier(2, timeout=30)
    waited: set[int] = set()

    def merge_after_both_read(old, new):  # noqa: ANN001, ANN202 - wraps pure logic only
        merged = real_merge(old, new)
        if threading.get_ident() not in waited:  # only each call's first attempt
            waited.add(threading.get_ident())
            both_read.wait()
        return merged

    conceptualizer.merge = merge_after_both_read
    outcomes: list[grpc.StatusCode] = []

    def call(text: str) -> None:
        try:
            encode(stub, "cy", text, pb.ENCODE_MODE_MERGE)
            outcomes.append(grpc.StatusCode.OK)
        except grpc.RpcError as exc:
            outcomes.append(exc.code())

    threads = [threading.Thread(target=call, args=(text,))
               for text in ("I like comedies and horror", "I like musicals and war films")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    conceptualizer.merge = real_merge
    assert sorted(outcomes, key=str) == sorted(
        [grpc.StatusCode.OK, grpc.StatusCode.RESOURCE_EXHAUSTED], key=str)
    _, concepts = state(stub, "cy")
    assert len(concepts) == CAP
    assert [p for p, _, _ in concepts][0] == "westerns"


def test_a_cap_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="max-concepts-per-user"):
        Settings(max_concepts_per_user=0)
