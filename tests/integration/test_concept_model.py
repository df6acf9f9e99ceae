"""The LLM step through a real server: `serve --concept-model-dir` with a tiny random model."""

from __future__ import annotations

from pathlib import Path

import grpc
import redis
from interest.v1 import interest_pb2 as pb
from interest.v1 import interest_pb2_grpc
from interest_server.ops.redis_launcher import free_port

from tests.unit.test_rewriter import _tiny_model_dir

from .conftest import start_server_process
from .test_metrics import sample, scrape


def test_serve_with_a_concept_model_falls_back_to_the_extractor(
        redis_client: redis.Redis, redis_server: str, tmp_path: Path) -> None:
    model_dir = _tiny_model_dir(tmp_path / "model", "causal")
    metrics_port = free_port()
    proc = start_server_process(redis_server, extra_args=(
        "--concept-model-dir", model_dir, "--concept-model-budget-ms", "5000",
        "--metrics-port", str(metrics_port)))
    try:
        with grpc.insecure_channel(proc.target) as channel:
            stub = interest_pb2_grpc.InterestServiceStub(channel)
            request = pb.EncodeInterestRequest(user_id="ann", text="I love jazz but hate country")
            first = stub.EncodeInterest(request, timeout=60)
            second = stub.EncodeInterest(request, timeout=60)
        counts = scrape(metrics_port)
    finally:
        proc.stop()
    # A random model writes no JSON: the fallback extractor's concepts, as without the model.
    for resp in (first, second):
        assert [(c.phrase, c.polarity) for c in resp.concepts] == [
            ("jazz", pb.POLARITY_POSITIVE), ("country", pb.POLARITY_NEGATIVE)]
    # ...and the model was really asked, once: the repeat came from the cache.
    calls = "interest_concept_model_calls_total"
    assert counts.get(sample(calls, outcome="invalid_fallback")) == 1.0
    assert counts.get(sample(calls, outcome="cache_hit")) == 1.0
    assert counts.get(sample(calls, outcome="json"), 0.0) == 0.0
