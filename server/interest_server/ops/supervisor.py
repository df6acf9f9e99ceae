"""`interest-server serve --processes N`: N server processes on one port and one Redis.

A Python process runs one thread at a time, and the write path is Python per event, so one
process uses about one core however many threads it has (bench/README.md, Ingestion). Server
processes are stateless replicas (every acknowledged write is in Redis, each follows the catalog
stream), so the way to use a machine's cores is several of them: gRPC binds its ports with
SO_REUSEPORT, so each child binds the same port and the kernel spreads new connections over
them. The parent only starts the embedded Redis when no URL is given, starts the children with
the settings in their environment (secrets never reach a command line), prints the listening
line once every child is serving, forwards SIGTERM / SIGINT, and stops everything when one
child dies: a half-up server that looks healthy is worse than a restart by the orchestrator.
"""

from __future__ import annotations

import logging
import os
import re
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass, field

from interest_server import config
from interest_server.config import Settings
from interest_server.ops.redis_launcher import free_port, start_embedded
from interest_server.ops.stop_signals import StopSignals

log = logging.getLogger(__name__)

LISTENING = re.compile(r"interest-server listening on ")
"""What a child prints on stdout once it serves (cli._serve)."""
STOP_TIMEOUT_S = 20.0
"""How long a child gets to stop gracefully (its own grace is 5 s) before it is killed."""
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
"""BLAS pools (the Recommend scan) a child sizes to its share of the cores, unless set."""


def cpu_count() -> int:
    """Cores this process may run on."""
    return len(os.sched_getaffinity(0))


def process_count(settings: Settings) -> int:
    """Server processes `serve` runs: settings.processes, or one per core for 0."""
    return settings.processes or cpu_count()


def cores_each(count: int) -> int:
    """Each of `count` processes' share of the cores (at least one): its thread pools' size."""
    return max(1, cpu_count() // count)


def child_settings(settings: Settings, index: int, count: int, redis_url: str,
                   port: int) -> Settings:
    """The settings of child `index` of `count`: one process, the shared Redis (its URL
    resolved by the parent: a child never reads --redis-url-file) and port, its own metrics
    port, torch threads sized to its share of the cores unless set, and this process as the
    supervisor it must not outlive."""
    return settings.replace(
        processes=1, redis_url=redis_url, redis_url_file="", port=port,
        supervisor_pid=os.getpid(),
        metrics_port=settings.metrics_port + index if settings.metrics_port else 0,
        torch_threads=settings.torch_threads or cores_each(count))


def child_environment(child: Settings, count: int) -> dict[str, str]:
    """This process's environment with every setting of `child` as INTEREST_* and the BLAS
    pools sized to a share of the cores where the user did not size them."""
    env = {**os.environ, **config.to_env(child)}
    for name in THREAD_VARIABLES:
        env.setdefault(name, str(cores_each(count)))
    return env


@dataclass
class Child:
    """One `interest-server serve` child and the thread that relays its stdout."""

    index: int
    proc: subprocess.Popen
    ready: threading.Event = field(default_factory=threading.Event)

    @classmethod
    def start(cls, index: int, settings: Settings, count: int) -> Child:
        proc = subprocess.Popen([sys.executable, "-m", "interest_server.cli", "serve"],
                                env=child_environment(settings, count), stdout=subprocess.PIPE,
                                text=True)
        child = cls(index, proc)
        threading.Thread(target=child._relay, name=f"child-{index}-stdout", daemon=True).start()
        return child

    def _relay(self) -> None:
        """Pass the child's stdout on, except its listening line, which marks it ready (the
        parent prints one for all of them)."""
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if LISTENING.match(line):
                self.ready.set()
            else:
                sys.stdout.write(f"[{self.index}] {line}")
                sys.stdout.flush()

    def terminate(self) -> None:
        """SIGTERM: the child drains its calls and stops."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)

    def wait(self) -> int:
        """The exit code, after SIGKILL if the child is still there after STOP_TIMEOUT_S."""
        try:
            return self.proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            log.warning("server process %d did not stop in %.0f s: killing it", self.proc.pid,
                        STOP_TIMEOUT_S)
            self.proc.kill()
            return self.proc.wait()


def serve_processes(settings: Settings) -> int:
    """Run process_count(settings) server processes until SIGTERM / SIGINT (exit 0) or until
    one of them exits by itself (exit 1, after stopping the others)."""
    count = process_count(settings)
    signals = StopSignals()
    embedded = None
    children: list[Child] = []
    failed = False
    try:
        url = settings.resolved_redis_url()
        if not url:
            embedded = start_embedded(settings.data_dir, settings.redis_appendfsync)
            url = embedded.url
        port = settings.port or free_port(settings.host)  # the children bind it just after
        children = [Child.start(i, child_settings(settings, i, count, url, port), count)
                    for i in range(count)]
        announced = False
        while not signals.wait(0.1):
            gone = [c for c in children if c.proc.poll() is not None]
            if gone:
                log.error("server process %d (child %d) exited with code %s%s: stopping the "
                          "others", gone[0].proc.pid, gone[0].index, gone[0].proc.returncode,
                          "" if announced else " before serving")
                failed = True
                break
            if not announced and all(c.ready.is_set() for c in children):
                print(f"interest-server listening on {settings.host}:{port} ({count} "
                      f"processes, pids {' '.join(str(c.proc.pid) for c in children)})",
                      flush=True)
                announced = True
    finally:
        if signals.received:
            log.info("signal %d: stopping %d server processes", signals.received[0], count)
        for child in children:  # all at once: the children drain in parallel
            child.terminate()
        for child in children:
            child.wait()
        if embedded is not None:
            embedded.stop()
    return 1 if failed else 0
