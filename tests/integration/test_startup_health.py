"""A slow start over a real port: health NOT_SERVING and calls UNAVAILABLE until the model is
warm and the catalog loaded, then SERVING with the whole catalog."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

import grpc
import numpy as np
from grpc_health.v1 import health_pb2, health_pb2_grpc
from interest.v1 import interest_pb2 as pb
from interest.v1 import interest_pb2_grpc
from interest_server.api.app import SERVICE_NAME, RunningServer, create_server
from interest_server.api.startup import STARTING_MESSAGE
from interest_server.model.encoder import TextEncoder
from interest_server.ops.redis_launcher import free_port

from .conftest import preload_catalog, settings_for

WARM_DELAY_S = 2.0
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


class SlowWarmEncoder:
    """The real encoder, whose warm() first sleeps: a start that takes WARM_DELAY_S longer."""

    def __init__(self, inner: TextEncoder) -> None:
        self.inner = inner
        self.model_id, self.dim = inner.model_id, inner.dim
        self.warm_done_at: float | None = None

    def warm(self) -> None:
        time.sleep(WARM_DELAY_S)
        self.inner.warm()
        self.warm_done_at = time.monotonic()

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        return self.inner.embed(texts)

    def embed_concepts(self, phrases: Sequence[str]) -> np.ndarray:
        return self.inner.embed_concepts(phrases)


@dataclass
class Poll:
    at: float
    health: tuple[int | None, int | None]
    """Status of "" and of the service; None while the port does not answer."""
    recommend: grpc.StatusCode | None
    details: str
    items: int


def poll_once(channel: grpc.Channel) -> Poll:
    health = health_pb2_grpc.HealthStub(channel)
    statuses: list[int | None] = []
    for name in ("", SERVICE_NAME):
        try:
            statuses.append(health.Check(health_pb2.HealthCheckRequest(service=name),
                                         timeout=2).status)
        except grpc.RpcError:
            statuses.append(None)
    code, details, items = None, "", 0
    if statuses[0] is not None:
        try:
            resp = interest_pb2_grpc.InterestServiceStub(channel).Recommend(
                pb.RecommendRequest(user_id="early", k=5), timeout=5)
            code, items = grpc.StatusCode.OK, len(resp.items)
        except grpc.RpcError as exc:
            code, details = exc.code(), exc.details() or ""
    return Poll(time.monotonic(), (statuses[0], statuses[1]), code, details, items)


def test_health_is_not_serving_until_warm_and_catalog_loaded(redis_client, redis_server,  # noqa: ANN001
                                                             encoder) -> None:  # noqa: ANN001
    # A catalog already in Redis, which the slow server must load before it serves.
    preload_catalog(redis_server, encoder)

    slow = SlowWarmEncoder(encoder)
    port = free_port()
    started: list[RunningServer] = []
    failed: list[BaseException] = []

    def start() -> None:
        try:
            started.append(create_server(settings_for(redis_server, port=port), encoder=slow))
        except BaseException as exc:  # noqa: BLE001 - reported by the test below
            failed.append(exc)

    starter = threading.Thread(target=start, name="slow-start")
    polls: list[Poll] = []
    options = [("grpc.initial_reconnect_backoff_ms", 20), ("grpc.max_reconnect_backoff_ms", 50),
               ("grpc.min_reconnect_backoff_ms", 20)]
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}", options=options) as channel:
            starter.start()
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                polls.append(poll_once(channel))
                if polls[-1].health == (SERVING, SERVING) or (failed and not starter.is_alive()):
                    break
                time.sleep(0.05)
            starter.join(60)
            polls.append(poll_once(channel))
    finally:
        starter.join(60)
        for running in started:
            running.stop(grace_s=0.5)
    assert not failed, failed
    assert slow.warm_done_at is not None

    seen = [(round(p.at - slow.warm_done_at, 3), p.health) for p in polls]
    # Polls that ended before warm-up did lie wholly in the start-up: every status that was
    # answered said NOT_SERVING (a check that timed out on a loaded box answered nothing), and
    # calls were told to come back, not ranked against an empty index.
    during = [p for p in polls if p.at < slow.warm_done_at and p.health[0] is not None]
    assert any(p.health == (NOT_SERVING, NOT_SERVING) for p in during), seen
    assert all(s in (None, NOT_SERVING) for p in during for s in p.health), seen
    assert all(p.recommend == grpc.StatusCode.UNAVAILABLE and p.details == STARTING_MESSAGE
               for p in during), [(p.recommend, p.details) for p in during]
    # Then SERVING for both names, only after warm-up, and never NOT_SERVING again, with the
    # whole catalog loaded. (While health flips, one name may say SERVING a moment before the
    # other: the two are set one after the other; polls in that moment are not judged.)
    first = next(i for i, p in enumerate(polls) if p.health == (SERVING, SERVING))
    serving = polls[first:]
    assert serving[0].at > slow.warm_done_at, seen
    assert all(p.health == (SERVING, SERVING) for p in serving), seen
    assert all(p.recommend == grpc.StatusCode.OK and p.items == 5 for p in serving), \
        [(p.recommend, p.details, p.items) for p in serving]
