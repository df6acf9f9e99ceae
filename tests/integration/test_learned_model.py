"""A trained sequence model served incrementally: checkpoint by configuration, versioned state."""

from __future__ import annotations

import random
from pathlib import Path

import grpc
import pytest
from interest.v1 import interest_pb2 as pb
from interest.v1 import interest_pb2_grpc
from interest_server.api.app import create_server
from interest_server.errors import FailedPrecondition
from interest_server.model.sequence_model import SeqConfig, SequenceInterestModel
from interest_server.offline.movielens import GROUPLENS_GENRES
from interest_server.offline.training import TrainConfig, train

from .conftest import MOVIES, catalog_items, event, settings_for


def _write_dataset(directory: Path) -> None:
    """The test catalog in GroupLens format; users watch runs of consecutive ids (i -> i+1)."""
    directory.mkdir()
    with (directory / "u.item").open("w", encoding="latin-1") as f:
        for item_id, title, genres in MOVIES:
            flags = "|".join("1" if g in genres else "0" for g in GROUPLENS_GENRES)
            f.write(f"{item_id}|{title}|01-Jan-1995||http://example.invalid|{flags}\n")
    rng = random.Random(5)
    loo = ["user_id\tn_train\tvalid_item_id\ttest_item_id\tvalid_item_exact_ts\t"
           "test_item_exact_ts"]
    with (directory / "u.data").open("w") as f:
        for user in range(1, 121):
            start, length = rng.randrange(30), rng.randrange(8, 16)
            items = [(start + step) % 30 + 1 for step in range(length)]
            for step, item in enumerate(items):
                f.write(f"{user}\t{item}\t4\t{880000000 + user * 1000 + step}\n")
            loo.append(f"{user}\t{length - 2}\t{items[-2]}\t{items[-1]}\t{items[-2]}\t"
                       f"{items[-1]}")
    (directory / "loo_split.tsv").write_text("\n".join(loo) + "\n")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("learned")
    _write_dataset(root / "data")
    out = root / "model.pt"
    train(root / "data", out, epochs=40, progress=False,
          model=SeqConfig(dim=32, max_len=8, n_layers=1, dropout=0.1, emb_dropout=0.1),
          config=TrainConfig(epochs=40, batch_size=32, lr=5e-3, weight_decay=0.0,
                             eval_every=5, patience=100, threads=1, time_limit_s=120))
    return out


def test_learned_model_is_served_incrementally(checkpoint, redis_client, redis_server,
                                               encoder) -> None:  # noqa: ANN001
    model = SequenceInterestModel.load(checkpoint)
    learned = create_server(settings_for(redis_server, interest_model_path=str(checkpoint)),
                            encoder=encoder)
    try:
        with grpc.insecure_channel(learned.target) as channel:
            stub = interest_pb2_grpc.InterestServiceStub(channel)
            stub.UpsertItems(iter([pb.UpsertItemsRequest(items=catalog_items())]), timeout=60)
            stub.IngestEvents(pb.EventBatch(events=[
                event(f"l{i}", "lin", str(i), kind=pb.EVENT_TYPE_RATING, value=4, ts=i)
                for i in (11, 12, 13)]), timeout=30)
            resp = stub.Recommend(pb.RecommendRequest(user_id="lin", k=3), timeout=10)
            assert resp.strategy == "behaviour"
            assert "14" in [i.item_id for i in resp.items], resp
            state = stub.GetUserState(pb.GetUserStateRequest(user_id="lin", include_vector=True))
            assert state.model == model.version
            assert len(state.interest_vector) == model.dim
            # The window holds at least the model's history, whatever window_size says.
            assert learned.engine.users.window_size >= model.max_len
    finally:
        learned.stop(grace_s=0.5)

    # The same Redis served by the decayed average: the learned vector is never mixed in.
    plain = create_server(settings_for(redis_server), encoder=encoder)
    try:
        with grpc.insecure_channel(plain.target) as channel:
            stub = interest_pb2_grpc.InterestServiceStub(channel)
            # The learned vector is never read: one is recomputed from the stored window with
            # this model (state/user_store.py UserStore.rebuild), in its own dimension.
            assert stub.Recommend(pb.RecommendRequest(user_id="lin", k=3)).strategy == \
                "behaviour"
            state = stub.GetUserState(pb.GetUserStateRequest(user_id="lin", include_vector=True))
            assert state.model == encoder.model_id
            assert len(state.interest_vector) == encoder.dim != model.dim
            stub.IngestEvents(pb.EventBatch(events=[event("l14", "lin", "14", ts=14)]))
            state = stub.GetUserState(pb.GetUserStateRequest(user_id="lin", include_vector=True))
            assert state.model == encoder.model_id
            assert len(state.interest_vector) == encoder.dim
            assert stub.Recommend(pb.RecommendRequest(user_id="lin", k=3)).strategy == \
                "behaviour"
    finally:
        plain.stop(grace_s=0.5)


def test_checkpoint_of_another_text_model_is_refused(checkpoint, redis_client, redis_server,
                                                     encoder, monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setattr(encoder, "model_id", "some-other-encoder:000000000000")
    # The rules: the shipped concept head is tied to the encoder too, and would be refused
    # first (docs/models.md); this test is about the interest checkpoint.
    with pytest.raises(FailedPrecondition, match="trained on text vectors"):
        create_server(settings_for(redis_server, interest_model_path=str(checkpoint),
                                   concept_extractor="rules"), encoder=encoder)
