"""The benchmarks that drive Redis with the server's own scripts must keep up with the scripts'
argument layout: a bench that fails only after its timed run loses its results."""

from __future__ import annotations

import sys
from pathlib import Path

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
