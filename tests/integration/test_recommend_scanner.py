"""Recommend through the real server on a catalog big enough for the certified int8 scanner:
behaviour, a stated liked concept and a dislike give exactly the list computed here over every
item from the stored vectors (the scanner is used, and proves nothing was missed)."""

from __future__ import annotations

import grpc
import numpy as np
import pytest
import redis
from interest.v1 import interest_pb2 as pb
from interest.v1 import interest_pb2_grpc
from interest_server.config import Settings
from interest_server.model import conceptualizer
from interest_server.model.encoder import TextEncoder
from interest_server.recommend.item_index import CatalogItem
from interest_server.recommend.scan import SCAN_MIN_ITEMS, Scanner
from interest_server.state.catalog import CatalogStore
from interest_server.state.keys import DEFAULT_KEYS

from .conftest import event

GENRES = ("Comedy", "Drama", "Romance", "Horror", "Western", "Documentary", "Musical")
N = SCAN_MIN_ITEMS + 2_000


def genres_of(i: int) -> tuple[str, ...]:
    return tuple(sorted({GENRES[i % 7], GENRES[(i * 5 + 2) % 7]}))


@pytest.fixture
def big_catalog(redis_client: redis.Redis, encoder: TextEncoder) -> np.ndarray:
    """N random unit vectors stored straight into Redis under the model's id (no embedding)."""
    rng = np.random.default_rng(7)
    vectors = rng.standard_normal((N, encoder.dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    store = CatalogStore(redis_client, stream_maxlen=N)
    for start in range(0, N, 2_000):
        store.upsert([CatalogItem(f"s{i}", f"Item {i}. Genres: {', '.join(genres_of(i))}",
                                  {"genre": genres_of(i)}, vectors[i], encoder.model_id)
                      for i in range(start, min(start + 2_000, N))])
    return vectors


def test_liked_concept_and_dislike_through_the_scanner_equal_the_exact_list(
        big_catalog: np.ndarray, make_server, redis_client: redis.Redis,  # noqa: ANN001
        monkeypatch: pytest.MonkeyPatch) -> None:
    scans: list[int] = []
    real = Scanner.candidates

    def counted(self: Scanner, *args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        scans.append(1)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Scanner, "candidates", counted)
    running = make_server()
    rng = np.random.default_rng(8)
    liked = [f"s{i}" for i in rng.choice(N, 20, replace=False)]
    # Other users make other items popular (1 to 3 likes each): the server's default
    # popularity prior (Settings.popularity_weight > 0) lifts them; the scanner path scores
    # the popular rows exactly.
    crowd = [f"s{i}" for i in rng.choice(N, 60, replace=False)]
    others = [event(f"o{u}-{n}", f"u{u}", item) for u in (2, 3, 4)
              for n, item in enumerate(crowd[:20 * u])]
    with grpc.insecure_channel(running.target) as channel:
        stub = interest_pb2_grpc.InterestServiceStub(channel)
        stub.IngestEvents(pb.EventBatch(events=others), timeout=30)
        stub.IngestEvents(pb.EventBatch(events=[event(f"e{n}", "u1", item)
                                                for n, item in enumerate(liked)]), timeout=30)
        encoded = stub.EncodeInterest(pb.EncodeInterestRequest(
            user_id="u1", text="I love comedy, I hate romance"), timeout=30)
        links = {c.phrase: (c.polarity, {x.value for x in c.links}) for c in encoded.stored}
        assert sorted(links.values()) == [(pb.POLARITY_POSITIVE, {"Comedy"}),
                                          (pb.POLARITY_NEGATIVE, {"Romance"})]
        got = stub.Recommend(pb.RecommendRequest(user_id="u1", k=10), timeout=30)
        state = stub.GetUserState(pb.GetUserStateRequest(user_id="u1", include_vector=True),
                                  timeout=30)
    assert scans, "the scanner was not used"
    assert got.strategy == "behaviour+concepts" and len(got.items) == 10

    # The exact list: (1 - prior) * behaviour + prior * popularity + W * w * (1 on Comedy items,
    # else cosine), Romance and the liked items removed, ties by id (prior: the popularity
    # weight; popularity: the decayed count over the top one's, 0 off the list).
    query = np.asarray(state.interest_vector, dtype=np.float32)
    prior = Settings.popularity_weight
    assert prior > 0
    counts = dict(redis_client.zrevrange(DEFAULT_KEYS.popularity, 0, -1, withscores=True))
    popularity = np.zeros(N, dtype=np.float32)
    for item, count in counts.items():
        popularity[int(item[1:])] = count / max(counts.values())
    stored = {c.phrase: c for c in conceptualizer.loads(
        redis_client.get(DEFAULT_KEYS.user("u1").concepts))}
    like = next(stored[p] for p, (pol, _) in links.items() if pol == pb.POLARITY_POSITIVE)
    comedy = np.array(["Comedy" in genres_of(i) for i in range(N)])
    romance = np.array(["Romance" in genres_of(i) for i in range(N)])
    score = (1 - prior) * (big_catalog @ query) + Settings.concept_weight * like.weight * \
        np.where(comedy, np.float32(1.0), big_catalog @ like.vector) + prior * popularity
    score[romance] = -np.inf
    score[[int(i[1:]) for i in liked]] = -np.inf
    exact = sorted(range(N), key=lambda i: (-score[i], f"s{i}"))[:10]
    assert [i.item_id for i in got.items] == [f"s{i}" for i in exact]
    assert popularity[exact].any(), "no popular item listed: the prior is not exercised"
    np.testing.assert_allclose([i.score for i in got.items], score[exact], rtol=1e-5)
    assert got.removed_by_dislikes == int(np.count_nonzero(romance & ~np.isin(
        np.arange(N), [int(i[1:]) for i in liked])))
