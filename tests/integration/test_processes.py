"""`interest-server serve --processes N`: N server processes on one port and one Redis, started,
supervised and stopped by one parent (process-per-core; bench/README.md, Ingestion)."""

from __future__ import annotations

import os
import re
import signal
import socket
import time
import urllib.request
from pathlib import Path

import grpc
import pytest
from interest.v1 import interest_pb2 as pb
from interest.v1 import interest_pb2_grpc
from interest_server import config
from interest_server.config import Settings
from interest_server.ops.supervisor import child_environment, child_settings

from .conftest import ServerProcess, catalog_items, event, start_server_process

CONNECTIONS = 16
"""Separate TCP connections made: the chance that the kernel puts all on one of two processes
is 2^-15."""


def _pids(server: ServerProcess) -> list[int]:
    """The children's pids: ServerProcess keeps only the port, so read /proc."""
    children = Path(f"/proc/{server.proc.pid}/task/{server.proc.pid}/children").read_text()
    return [int(p) for p in children.split()]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat.split(")")[-1].split()[0] != "Z"  # a zombie is gone, only not yet reaped


def _two_free_ports() -> int:
    """A port p such that p and p + 1 are both free now."""
    for _ in range(100):
        with socket.socket() as a:
            a.bind(("127.0.0.1", 0))
            port = a.getsockname()[1]
            with socket.socket() as b:
                try:
                    b.bind(("127.0.0.1", port + 1))
                except OSError:
                    continue
                return port
    raise RuntimeError("no two adjacent free ports")


def _recommend_calls(metrics_port: int) -> float:
    text = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).read()
    return sum(float(m.group(1)) for m in re.finditer(
        rb'^interest_rpc_duration_seconds_count\{[^}]*method="Recommend"[^}]*\} (\S+)$', text,
        re.MULTILINE))


def _channel(target: str) -> grpc.Channel:
    # Channels with equal arguments share a TCP connection in gRPC core; a local subchannel
    # pool makes each channel its own connection, as separate backend processes would.
    return grpc.insecure_channel(target, options=[("grpc.use_local_subchannel_pool", 1)])


def test_processes_share_the_port_and_redis_and_stop_together_when_one_dies(
        redis_client, redis_server: str) -> None:  # noqa: ANN001
    metrics = _two_free_ports()
    server = start_server_process(redis_server, extra_args=(
        "--processes", "2", "--metrics-port", str(metrics), "--workers", "4"))
    try:
        pids = _pids(server)
        assert len(pids) == 2 and all(_alive(p) for p in pids)
        with _channel(server.target) as channel:
            stub = interest_pb2_grpc.InterestServiceStub(channel)
            stub.UpsertItems(iter([pb.UpsertItemsRequest(items=catalog_items())]), timeout=60)
        items = [i.item_id for i in catalog_items()]
        for n in range(CONNECTIONS):
            with _channel(server.target) as channel:
                stub = interest_pb2_grpc.InterestServiceStub(channel)
                # Written through one process, read at once through whichever this connection
                # reached: the state is in the shared Redis, and the catalog reached both.
                ack = stub.IngestEvents(pb.EventBatch(batch_id=f"b{n}", events=[
                    event(f"e{n}", f"user{n}", items[n % len(items)])]), timeout=30)
                assert ack.applied == 1
                resp = stub.Recommend(pb.RecommendRequest(user_id=f"user{n}", k=3), timeout=30)
                assert resp.user_version == ack.acks[0].user_version
                assert len(resp.items) == 3
        with _channel(server.target) as channel:
            stub = interest_pb2_grpc.InterestServiceStub(channel)
            for n in range(CONNECTIONS):
                state = stub.GetUserState(pb.GetUserStateRequest(user_id=f"user{n}"), timeout=30)
                assert [e.event_id for e in state.recent_events] == [f"e{n}"]
        # Both processes served: each child has its own metrics port (metrics + index).
        calls = [_recommend_calls(metrics), _recommend_calls(metrics + 1)]
        assert sum(calls) == CONNECTIONS and min(calls) > 0, calls
        # One child dies: the parent stops the other and exits with an error.
        os.kill(pids[0], signal.SIGKILL)
        assert server.proc.wait(timeout=60) == 1
        assert not any(_alive(p) for p in pids)
    finally:
        server.stop()


def test_processes_with_embedded_redis_stop_cleanly_on_sigterm(tmp_path: Path) -> None:
    server = start_server_process("", extra_args=(
        "--processes", "2", "--data-dir", str(tmp_path / "redis"), "--workers", "4"))
    try:
        pids = _pids(server)  # two servers, the parent's Redis and that Redis' guardian
        lines = [Path(f"/proc/{p}/cmdline").read_bytes() for p in pids]
        assert sum(b"interest_server.cli" in c for c in lines) == 2
        assert sum(b"redis-server" in c for c in lines) == 1
        with _channel(server.target) as channel:
            stub = interest_pb2_grpc.InterestServiceStub(channel)
            stub.UpsertItems(iter([pb.UpsertItemsRequest(items=catalog_items()[:4])]),
                             timeout=60)
            ack = stub.IngestEvents(pb.EventBatch(batch_id="b", events=[
                event("e1", "u1", catalog_items()[0].item_id)]), timeout=30)
            assert ack.applied == 1
        server.proc.send_signal(signal.SIGTERM)
        assert server.proc.wait(timeout=60) == 0
        assert not any(_alive(p) for p in pids)
    finally:
        server.stop()


def test_children_do_not_outlive_a_killed_parent(redis_client, redis_server: str  # noqa: ANN001
                                                 ) -> None:
    server = start_server_process(redis_server, extra_args=("--processes", "2",
                                                            "--workers", "4"))
    pids = _pids(server)
    try:
        assert len(pids) == 2
        server.proc.send_signal(signal.SIGKILL)  # no chance to stop its children
        server.proc.wait(timeout=10)
        deadline = time.monotonic() + 30
        while any(_alive(p) for p in pids) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not any(_alive(p) for p in pids), "a child outlived its killed parent"
    finally:
        for p in pids:  # orphans, if the test failed
            if _alive(p):
                os.kill(p, signal.SIGKILL)
        server.stop()


def test_child_settings_travel_whole_through_the_environment() -> None:
    parent = Settings(processes=3, port=7000, metrics_port=9100, auth_tokens="secret read",
                      redis_cluster=True, theta=0.3, data_dir=Path("/var/x"))
    child = child_settings(parent, 2, 3, "redis://h:1/0", 7001)
    assert (child.processes, child.port, child.redis_url, child.metrics_port) == \
        (1, 7001, "redis://h:1/0", 9102)
    assert child.supervisor_pid == os.getpid()
    assert child.torch_threads >= 1
    env = child_environment(child, 3)
    saved = {k: v for k, v in os.environ.items() if k.startswith(config.ENV_PREFIX)}
    try:
        for k in saved:
            del os.environ[k]
        os.environ.update({k: v for k, v in env.items() if k.startswith(config.ENV_PREFIX)})
        assert config.from_env() == child
    finally:
        for k in [k for k in os.environ if k.startswith(config.ENV_PREFIX)]:
            del os.environ[k]
        os.environ.update(saved)


def test_processes_must_not_be_negative() -> None:
    with pytest.raises(ValueError, match="processes"):
        Settings(processes=-1)
