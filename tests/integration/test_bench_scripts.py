"""The benchmarks that drive Redis with the server's own scripts must keep up with the scripts'
argument layout: a bench that fails only after its timed run loses its results."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import redis

BENCH = Path(__file__).resolve().parents[2] / "bench"


def test_redis_raw_issues_the_current_write_layout(redis_client: redis.Redis) -> None:
    sys.path.insert(0, str(BENCH))
    try:
        import redis_raw
    finally:
        sys.path.remove(str(BENCH))
    # Every write is checked inside (the header guard must accept it), over new and known users.
    out = redis_raw.python_pipeline(redis_client, events=300, batch=50, users=20)
    assert out["events"] == 300 and out["events_per_s"] > 0
    assert redis_client.zcard("py:pop") > 0


def test_scale_smoke_runs_end_to_end(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """bench/scale.py --smoke: a small embedded catalog, events the trainer's readers accept,
    ANN recall on user vectors, and a real server over gRPC whose pure-cosine list equals FAISS's
    exact one (what the full run's figures rest on)."""
    sys.path.insert(0, str(BENCH))
    try:
        import _common
        import scale
    finally:
        sys.path.remove(str(BENCH))
    from interest_server.offline.event_source import read_catalog_file, read_events_file

    monkeypatch.setattr(_common, "RESULTS", tmp_path / "results")
    out = scale.main(["--smoke", "--cache-dir", str(tmp_path / "cache")])
    data = out["data"]
    assert data["items"] == scale.SMOKE["items"] and data["unique_texts"] > 0.95 * data["items"]
    assert len(read_catalog_file(data["catalog_file"]).item_ids) == data["items"]
    assert len(read_events_file(data["events_file"])) == data["events"]
    ann = {r["method"] + r["setting"]: r for r in out["ann"]}
    assert ann["faiss_flat"]["recall_at_10"] == 1.0
    assert ann["server_scan_int8_certified" + "shortlist=256"]["recall_at_10"] == 1.0
    assert all(0.0 < r["recall_at_10"] <= 1.0 and r["latency"]["p50_ms"] > 0 for r in out["ann"])
    serve = out["serve"]
    ingest = serve["models"]["default"]["ingest"]
    assert ingest["ack_status_counts"] == {1: ingest["events"]}  # every event applied
    assert serve["recall_at_10_vs_faiss"]["default_cosine"] == 1.0
    assert serve["query_vs_bench_vector_cosine_mean"] > 0.95  # queries = the server's vectors
    assert serve["models"]["default"]["redis_bytes_per_user"]["mean_bytes"] > 384 * 4
    assert out["learned_skipped"] and (tmp_path / "results" / "scale_smoke.json").is_file()
