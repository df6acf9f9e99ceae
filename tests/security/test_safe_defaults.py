"""Safe by default: `serve` binds loopback, refuses a non-loopback address without auth, metrics
bind loopback, and the embedded Redis has a random password that only an owner-only URL file
tells (`--redis-url-file`), never a command line or a log line.

Real processes over real ports: `interest-server serve` children with the real model and the
embedded redis-server; what a socket is bound to is read from /proc/net/tcp{,6}, and a connect to
this machine's non-loopback address shows whether the port is reachable from elsewhere.
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import os
import re
import shutil
import socket
import stat
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import grpc
import pytest
import redis
import yaml
from grpc_health.v1 import health_pb2, health_pb2_grpc
from interest.v1 import interest_pb2 as pb
from interest.v1 import interest_pb2_grpc
from interest_server import config
from interest_server.cli import exposure_error
from interest_server.config import Settings
from interest_server.ops import metrics
from interest_server.ops.redis_launcher import CONF_NAME, URL_FILE_NAME, free_port, start_embedded

from tests.conftest import server_child_env

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 240.0
"""Model load and warm-up of a server child on a loaded 2-core box."""
TOKEN = "safe-defaults-token-4e1b"
SERVICE = "interest.v1.InterestService"


# -- helpers ----------------------------------------------------------------------------------

def listening_addresses(port: int) -> set[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    """Local addresses of the sockets in LISTEN state on TCP `port` (all processes), IPv4
    mapped into IPv6 given as IPv4."""
    found: set[ipaddress.IPv4Address | ipaddress.IPv6Address] = set()
    for name, width in (("tcp", 4), ("tcp6", 16)):
        path = Path("/proc/net") / name
        if not path.exists():
            continue
        for line in path.read_text().splitlines()[1:]:
            cols = line.split()
            address, hex_port = cols[1].split(":")
            if cols[3] != "0A" or int(hex_port, 16) != port:  # 0A: LISTEN
                continue
            raw = bytes.fromhex(address)
            # The kernel prints each 32-bit word in host (little-endian) order.
            raw = b"".join(raw[i:i + 4][::-1] for i in range(0, width, 4))
            ip = ipaddress.ip_address(raw)
            # gRPC listens on dual-stack sockets: 127.0.0.1 shows as ::ffff:127.0.0.1.
            mapped = getattr(ip, "ipv4_mapped", None)
            found.add(mapped if mapped is not None else ip)
    return found


def non_loopback_ipv4() -> str | None:
    """An IPv4 address of this machine that is not loopback, or None."""
    if shutil.which("ip"):
        out = subprocess.run(["ip", "-4", "-o", "addr"], capture_output=True, text=True,
                             timeout=10).stdout
        for match in re.finditer(r"inet (\d+\.\d+\.\d+\.\d+)/", out):
            if not ipaddress.ip_address(match.group(1)).is_loopback:
                return match.group(1)
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.connect(("192.0.2.1", 9))  # no packet is sent: only picks the route's address
            address = sock.getsockname()[0]
    except OSError:
        return None
    return None if ipaddress.ip_address(address).is_loopback else address


def connects(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=3):
            return True
    except OSError:
        return False


def descendants(pid: int) -> list[int]:
    """`pid` and every process below it."""
    out = [pid]
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            children = (task / "children").read_text().split()
        except OSError:
            continue
        for child in children:
            out += descendants(int(child))
    return out


def command_lines(pids: list[int]) -> list[str]:
    lines = []
    for pid in pids:
        with contextlib.suppress(OSError):
            lines.append(Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode())
    return lines


def clean_env(**extra: str) -> dict[str, str]:
    """A server child's environment without any INTEREST_* setting that the defaults are
    tested against."""
    env = server_child_env(**extra)
    for name in ("INTEREST_HOST", "INTEREST_REDIS_URL", "INTEREST_REDIS_URL_FILE",
                 "INTEREST_AUTH_TOKENS", "INTEREST_AUTH_TOKEN_FILE", "INTEREST_INSECURE",
                 "INTEREST_METRICS_HOST", "INTEREST_TLS_CLIENT_CA_FILE"):
        if name not in extra:
            env.pop(name, None)
    return env


@dataclass
class Served:
    """An `interest-server serve` child whose whole output is kept."""

    proc: subprocess.Popen[str]
    host: str = ""
    port: int = 0
    output: list[str] = field(default_factory=list)

    @classmethod
    def start(cls, args: list[str], env: dict[str, str]) -> Served:
        proc = subprocess.Popen([sys.executable, "-m", "interest_server.cli", "serve", *args],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                env=env)
        served = cls(proc)
        ready = threading.Event()

        def read() -> None:
            assert proc.stdout is not None
            for line in proc.stdout:
                served.output.append(line)
                match = re.search(r"interest-server listening on (.+):(\d+)", line)
                if match and not ready.is_set():
                    served.host, served.port = match.group(1), int(match.group(2))
                    ready.set()
            ready.set()

        threading.Thread(target=read, daemon=True).start()
        if not ready.wait(START_TIMEOUT_S) or not served.port:
            served.stop()
            raise RuntimeError("server did not start:\n" + "".join(served.output[-40:]))
        return served

    @property
    def log(self) -> str:
        return "".join(self.output)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`interest-server ARGS` that must end by itself (a refusal), quickly."""
    return subprocess.run([sys.executable, "-m", "interest_server.cli", *args],
                          capture_output=True, text=True, timeout=60,
                          env=env if env is not None else clean_env())


def serving(target: str, metadata: tuple[tuple[str, str], ...] = ()) -> bool:
    with grpc.insecure_channel(target) as channel:
        reply = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=SERVICE), timeout=10, metadata=metadata)
    return reply.status == health_pb2.HealthCheckResponse.SERVING


# -- the default server: loopback, embedded Redis with a password ------------------------------

@pytest.fixture(scope="module")
def default_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Served, Path,
                                                                                  int]]:
    """`serve --port 0` with no host, no Redis URL, no tokens: every default; metrics on."""
    data_dir = tmp_path_factory.mktemp("safe-defaults") / "data"
    metrics_port = free_port()
    served = Served.start(["--port", "0", "--data-dir", str(data_dir), "--metrics-port",
                           str(metrics_port), "--workers", "4", "--log-level", "INFO"],
                          clean_env())
    try:
        yield served, data_dir, metrics_port
    finally:
        served.stop()


def test_serve_listens_on_loopback_only_by_default(default_server) -> None:  # noqa: ANN001
    served, _, _ = default_server
    assert served.host == "127.0.0.1"
    assert listening_addresses(served.port) == {ipaddress.ip_address("127.0.0.1")}
    assert serving(f"127.0.0.1:{served.port}")
    other = non_loopback_ipv4()
    if other is not None:  # reachable from this machine only
        assert not connects(other, served.port), f"{other}:{served.port} accepted a connection"


def test_metrics_endpoint_binds_loopback_by_default(default_server) -> None:  # noqa: ANN001
    _, _, metrics_port = default_server
    assert listening_addresses(metrics_port) == {ipaddress.ip_address("127.0.0.1")}
    body = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10).read()
    assert b"interest_rpc_duration_seconds" in body
    other = non_loopback_ipv4()
    if other is not None:
        assert not connects(other, metrics_port)


def test_embedded_redis_needs_the_password_from_the_owner_only_url_file(
        default_server) -> None:  # noqa: ANN001
    served, data_dir, _ = default_server
    url_file = data_dir / URL_FILE_NAME
    assert stat.S_IMODE(url_file.stat().st_mode) == 0o600
    assert stat.S_IMODE((data_dir / CONF_NAME).stat().st_mode) == 0o600
    url = url_file.read_text().strip()
    parts = urlsplit(url)
    assert parts.hostname == "127.0.0.1" and parts.password and len(parts.password) >= 32
    # Without the password: refused (NOAUTH), with a wrong one too.
    for password in (None, "not-the-password"):
        anonymous = redis.Redis(host="127.0.0.1", port=parts.port, password=password,
                                socket_timeout=5)
        with pytest.raises(redis.RedisError, match="(?i)NOAUTH|auth|password"):
            anonymous.ping()
        anonymous.close()
    owner = redis.Redis.from_url(url, socket_timeout=5)
    try:
        assert owner.ping()
    finally:
        owner.close()
    # The password is on no command line of the server or its children (redis-server, the
    # guardian) and in none of its log lines; the log names the file instead.
    lines = command_lines(descendants(served.proc.pid))
    assert any("redis-server" in line for line in lines), lines
    assert not any(parts.password in line for line in lines)
    assert parts.password not in served.log
    assert str(url_file) in served.log
    for log in data_dir.glob("redis*.log"):
        assert parts.password not in log.read_text(errors="replace")


def test_redis_url_file_reaches_the_embedded_redis_and_tokens_allow_any_host(
        default_server) -> None:  # noqa: ANN001
    """A second `serve` on 0.0.0.0, allowed because it has a token, whose Redis is the first
    server's embedded one, named by --redis-url-file: the password is in neither its argv nor
    its log, and what it writes lands in that Redis."""
    first, data_dir, _ = default_server
    url_file = data_dir / URL_FILE_NAME
    url = url_file.read_text().strip()
    password = urlsplit(url).password
    assert password
    # Its own --data-dir stays empty: an embedded Redis there would mean the file was ignored.
    own_dir = data_dir.parent / "second"
    second = Served.start(["--host", "0.0.0.0", "--port", "0", "--redis-url-file",
                           str(url_file), "--data-dir", str(own_dir), "--workers", "4",
                           "--log-level", "INFO"],
                          clean_env(INTEREST_AUTH_TOKENS=f"{TOKEN} read,write"))
    try:
        assert second.host == "0.0.0.0"
        bound = listening_addresses(second.port)
        assert bound and all(a.is_unspecified for a in bound), bound  # 0.0.0.0 or ::
        other = non_loopback_ipv4()
        if other is not None:  # the positive control of the loopback checks above
            assert connects(other, second.port)
        auth = (("authorization", f"Bearer {TOKEN}"),)
        with grpc.insecure_channel(f"127.0.0.1:{second.port}") as channel:
            stub = interest_pb2_grpc.InterestServiceStub(channel)
            with pytest.raises(grpc.RpcError) as refused:
                stub.GetUserState(pb.GetUserStateRequest(user_id="u"), timeout=30)
            assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
            stub.UpsertItems(iter([pb.UpsertItemsRequest(items=[pb.Item(
                item_id="url-file-item", text="A film written through --redis-url-file")])]),
                timeout=120, metadata=auth)
        owner = redis.Redis.from_url(url, socket_timeout=5)
        try:
            assert any(b"url-file-item" in key for key in owner.scan_iter(count=1000))
        finally:
            owner.close()
        assert not any(password in line for line in command_lines(descendants(
            second.proc.pid)))
        assert password not in second.log
        assert not own_dir.exists()
        assert first.proc.poll() is None
    finally:
        second.stop()


# -- refusals: a usage error before anything starts --------------------------------------------

@pytest.mark.parametrize("extra", [(), ("--processes", "2")], ids=["serve", "processes"])
def test_non_loopback_host_without_tokens_refuses_to_start(extra: tuple[str, ...],
                                                            tmp_path: Path) -> None:
    started = time.monotonic()
    result = run_cli("serve", "--host", "0.0.0.0", "--port", "0", "--data-dir",
                     str(tmp_path / "data"), *extra)
    assert result.returncode == 2, result.stdout + result.stderr
    for name in ("--insecure", "--auth-token-file", "INTEREST_AUTH_TOKENS"):
        assert name in result.stderr
    assert "Traceback" not in result.stderr
    assert "listening" not in result.stdout
    assert not (tmp_path / "data").exists(), "nothing (no embedded Redis) may have started"
    assert time.monotonic() - started < 60


def test_a_token_file_without_tokens_does_not_count(tmp_path: Path) -> None:
    empty = tmp_path / "tokens"
    empty.write_text("# no token yet\n")
    result = run_cli("serve", "--host", "0.0.0.0", "--auth-token-file", str(empty))
    assert result.returncode == 2 and "--insecure" in result.stderr


def test_redis_url_and_url_file_together_or_unreadable_are_usage_errors(tmp_path: Path) -> None:
    url_file = tmp_path / "redis-url"
    url_file.write_text("redis://127.0.0.1:1/0\n")
    both = run_cli("serve", "--redis-url", "redis://127.0.0.1:1/0", "--redis-url-file",
                   str(url_file))
    assert both.returncode == 2 and "not both" in both.stderr, both.stderr
    missing = run_cli("import", "x.csv", "--start", "--redis-url-file", str(tmp_path / "no"))
    assert missing.returncode == 2 and "--redis-url-file" in missing.stderr, missing.stderr
    assert "Traceback" not in both.stderr + missing.stderr


# -- the rules themselves ----------------------------------------------------------------------

@pytest.mark.parametrize(("host", "loopback"), [
    ("127.0.0.1", True), ("127.1.2.3", True), ("::1", True), ("[::1]", True),
    ("localhost", True), ("0.0.0.0", False), ("::", False), ("192.0.2.7", False),
    ("example.com", False), ("", False)])
def test_is_loopback(host: str, loopback: bool) -> None:
    assert config.is_loopback(host) is loopback


def test_exposure_needs_tokens_mutual_tls_or_insecure(tmp_path: Path) -> None:
    tokens = tmp_path / "tokens"
    tokens.write_text(f"{TOKEN} read\n")
    exposed = Settings(host="0.0.0.0")
    problem = exposure_error(exposed)
    assert problem is not None and "--insecure" in problem and "0.0.0.0" in problem
    assert exposure_error(Settings()) is None  # the default: loopback
    assert exposure_error(exposed.replace(insecure=True)) is None
    assert exposure_error(exposed.replace(auth_tokens=f"{TOKEN} read")) is None
    assert exposure_error(exposed.replace(auth_token_file=str(tokens))) is None
    assert exposure_error(exposed.replace(tls_cert_file="c", tls_key_file="k",
                                          tls_client_ca_file="ca")) is None  # mutual TLS
    assert exposure_error(exposed.replace(tls_cert_file="c", tls_key_file="k")) is not None
    unreadable = exposure_error(exposed.replace(auth_token_file=str(tmp_path / "none")))
    assert unreadable is not None and "bearer tokens" in unreadable


def test_defaults_and_flags() -> None:
    defaults = Settings()
    assert (defaults.host, defaults.metrics_host, defaults.insecure) == \
        ("127.0.0.1", "127.0.0.1", False)
    parser = argparse.ArgumentParser()
    config.add_arguments(parser)
    assert config.from_args(parser.parse_args(["--insecure"])).insecure is True
    assert config.from_args(parser.parse_args(["--insecure", "false"])).insecure is False
    assert config.from_args(parser.parse_args([])).insecure is False


def test_resolved_redis_url_reads_and_strips_the_file(tmp_path: Path) -> None:
    url_file = tmp_path / "u"
    url_file.write_text("  redis://:pw@127.0.0.1:7/0 \n")
    assert Settings(redis_url_file=str(url_file)).resolved_redis_url() == \
        "redis://:pw@127.0.0.1:7/0"
    assert Settings(redis_url="redis://h:1/0").resolved_redis_url() == "redis://h:1/0"
    assert Settings().resolved_redis_url() == ""
    with pytest.raises(ValueError, match="not both"):
        Settings(redis_url="redis://h:1/0", redis_url_file=str(url_file))
    (tmp_path / "blank").write_text("\n")
    with pytest.raises(ValueError, match="empty"):
        Settings(redis_url_file=str(tmp_path / "blank")).resolved_redis_url()


@pytest.mark.parametrize(("grpc_host", "metrics_host"), [("0.0.0.0", None),
                                                         ("127.0.0.1", "0.0.0.0")])
def test_metrics_serve_binds_its_own_host(grpc_host: str, metrics_host: str | None) -> None:
    """Loopback by default whatever the gRPC host; --metrics-host opens it for a scraper."""
    settings = Settings(host=grpc_host, metrics_port=free_port(), insecure=True)
    if metrics_host is not None:
        settings = settings.replace(metrics_host=metrics_host)
    endpoint = metrics.serve(settings)
    assert endpoint is not None
    try:
        bound = listening_addresses(endpoint.port)
        assert bound == {ipaddress.ip_address(metrics_host or "127.0.0.1")}, bound
    finally:
        endpoint.stop()


def test_every_embedded_start_gets_a_new_password_in_a_private_file(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    url_file = data_dir / URL_FILE_NAME
    url_file.write_text("stale\n")
    url_file.chmod(0o644)  # a wider file left behind is replaced, not reused
    passwords = []
    for _ in range(2):
        embedded = start_embedded(data_dir)
        try:
            assert stat.S_IMODE(url_file.stat().st_mode) == 0o600
            url = url_file.read_text().strip()
            assert url == embedded.url
            passwords.append(urlsplit(url).password)
            conf = (data_dir / CONF_NAME).read_text()
            assert f'requirepass "{passwords[-1]}"' in conf
            assert not any(passwords[-1] in line for line in command_lines([embedded.pid]))
            with pytest.raises(redis.RedisError, match="(?i)NOAUTH|auth"):
                redis.Redis(host="127.0.0.1", port=embedded.port, socket_timeout=5).ping()
        finally:
            embedded.stop()
    assert passwords[0] and passwords[1] and passwords[0] != passwords[1]
    assert not list(data_dir.glob(".*.tmp"))


# -- what the deployment files choose ----------------------------------------------------------

def _dockerfile_env() -> dict[str, str]:
    text = re.sub(r"\\\n\s*", " ", (ROOT / "Dockerfile").read_text())
    env: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("ENV "):
            env.update(re.findall(r"(\w+)=(\S+)", line))
    return env


def test_deployments_state_their_bind_and_authentication() -> None:
    # The image binds every interface and sets nothing insecure: a token must be given.
    image = _dockerfile_env()
    assert image["INTEREST_HOST"] == "0.0.0.0"
    assert not any(k in image for k in ("INTEREST_INSECURE", "INTEREST_AUTH_TOKENS"))
    # Compose (development on one machine): insecure, so published on the host's loopback only.
    compose: dict[str, Any] = yaml.safe_load((ROOT / "deploy/docker-compose.yml").read_text())
    server = compose["services"]["interest-server"]
    assert str(server["environment"]["INTEREST_INSECURE"]).lower() == "true"
    assert server["ports"] and all(str(p).startswith("127.0.0.1:") for p in server["ports"])
    # Kubernetes: tokens from the required Secret, never insecure; metrics open for scraping.
    docs = [d for p in sorted((ROOT / "deploy/k8s").glob("*.yaml"))
            for d in yaml.safe_load_all(p.read_text()) if d]
    data = next(d for d in docs if d["kind"] == "ConfigMap"
                and d["metadata"]["name"] == "interest-server-config")["data"]
    assert data["INTEREST_HOST"] == "0.0.0.0" and "INTEREST_INSECURE" not in data
    assert data["INTEREST_AUTH_TOKEN_FILE"].startswith("/etc/interest/auth/")
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    auth = next(v for v in pod["volumes"] if v["name"] == "auth")
    assert not auth["secret"].get("optional", False)
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    if annotations.get("prometheus.io/scrape") == "true":
        assert data["INTEREST_METRICS_HOST"] == "0.0.0.0"
        assert annotations["prometheus.io/port"] == data["INTEREST_METRICS_PORT"]
    assert os.path.basename(data["INTEREST_AUTH_TOKEN_FILE"]) in {
        i["path"] for i in auth["secret"]["items"]}
