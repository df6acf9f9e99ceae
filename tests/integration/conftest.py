"""Fixtures for tests over a real port: one model per session, a fresh server per test."""

from __future__ import annotations

import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import grpc
import pytest
import redis
from interest.v1 import interest_pb2 as pb
from interest.v1 import interest_pb2_grpc
from interest_server.api.app import RunningServer, create_server
from interest_server.config import Settings
from interest_server.model.encoder import TextEncoder

from tests.conftest import server_child_env

# A small catalog the tests make themselves: (id, title, genres). Ids 1..30.
MOVIES: list[tuple[str, str, list[str]]] = [
    ("1", "Murder on the Orient Express (1974)", ["Mystery", "Crime"]),
    ("2", "The Maltese Falcon (1941)", ["Mystery", "Film-Noir"]),
    ("3", "Vertigo (1958)", ["Mystery", "Thriller"]),
    ("4", "Rear Window (1954)", ["Mystery", "Thriller"]),
    ("5", "Gosford Park (2001)", ["Mystery", "Drama"]),
    ("6", "The Usual Suspects (1995)", ["Crime", "Mystery", "Thriller"]),
    ("7", "Sleepless in Seattle (1993)", ["Comedy", "Romance"]),
    ("8", "Pretty Woman (1990)", ["Comedy", "Romance"]),
    ("9", "Titanic (1997)", ["Drama", "Romance"]),
    ("10", "The Notebook (2004)", ["Drama", "Romance"]),
    ("11", "Casablanca (1942)", ["Drama", "Romance", "War"]),
    ("12", "Notting Hill (1999)", ["Comedy", "Romance"]),
    ("13", "Star Wars (1977)", ["Action", "Adventure", "Sci-Fi"]),
    ("14", "The Empire Strikes Back (1980)", ["Action", "Adventure", "Sci-Fi"]),
    ("15", "Alien (1979)", ["Horror", "Sci-Fi"]),
    ("16", "The Terminator (1984)", ["Action", "Sci-Fi"]),
    ("17", "Blade Runner (1982)", ["Film-Noir", "Sci-Fi"]),
    ("18", "The Matrix (1999)", ["Action", "Sci-Fi"]),
    ("19", "Toy Story (1995)", ["Animation", "Children's", "Comedy"]),
    ("20", "The Lion King (1994)", ["Animation", "Children's", "Musical"]),
    ("21", "Airplane! (1980)", ["Comedy"]),
    ("22", "Groundhog Day (1993)", ["Comedy", "Romance"]),
    ("23", "The Shining (1980)", ["Horror"]),
    ("24", "Halloween (1978)", ["Horror", "Thriller"]),
    ("25", "Unforgiven (1992)", ["Western"]),
    ("26", "Saving Private Ryan (1998)", ["Action", "Drama", "War"]),
    ("27", "Hoop Dreams (1994)", ["Documentary"]),
    ("28", "Singin' in the Rain (1952)", ["Comedy", "Musical", "Romance"]),
    ("29", "Chinatown (1974)", ["Film-Noir", "Mystery", "Thriller"]),
    ("30", "Fargo (1996)", ["Crime", "Drama", "Thriller"]),
]
GENRES = {item_id: set(genres) for item_id, _, genres in MOVIES}


def catalog_items() -> list[pb.Item]:
    """The test catalog as protobuf items (text like MovieLens' "Title (year). Genres: ...")."""
    return [pb.Item(item_id=i, text=f"{title}. Genres: {', '.join(genres)}",
                    attributes=[pb.Attribute(name="genre", values=genres)])
            for i, title, genres in MOVIES]


@pytest.fixture(scope="session")
def encoder() -> TextEncoder:
    """The real language model, loaded once for the session."""
    enc = TextEncoder()
    enc.warm()
    return enc


def settings_for(redis_url: str, **overrides: object) -> Settings:
    """Test settings: loopback, a free port, the given Redis."""
    return Settings(host="127.0.0.1", port=0, redis_url=redis_url, workers=8,
                    log_level="WARNING").replace(**overrides)


def preload_catalog(redis_url: str, encoder: TextEncoder) -> None:
    """Store catalog_items() through a short-lived server, so the next server starts with a
    catalog to load (and already-embedded items)."""
    first = create_server(settings_for(redis_url), encoder=encoder)
    try:
        with grpc.insecure_channel(first.target) as channel:
            interest_pb2_grpc.InterestServiceStub(channel).UpsertItems(
                iter([pb.UpsertItemsRequest(items=catalog_items())]), timeout=60)
    finally:
        first.stop(grace_s=0.5)


@pytest.fixture
def server_overrides() -> dict[str, object]:
    """Settings every server of a test gets (a module overrides it, e.g. for a cluster)."""
    return {}


@pytest.fixture
def server_args(server_overrides: dict[str, object]) -> tuple[str, ...]:
    """The same settings as `interest-server serve` flags, for server processes."""
    return tuple(arg for name, value in server_overrides.items()
                 for arg in ("--" + name.replace("_", "-"), str(value)))


@pytest.fixture
def server(redis_client: redis.Redis, redis_server: str, encoder: TextEncoder,
           server_overrides: dict[str, object]) -> Iterator[RunningServer]:
    """A started server on an empty Redis."""
    running = create_server(settings_for(redis_server, **server_overrides), encoder=encoder)
    try:
        yield running
    finally:
        running.stop(grace_s=0.5)


@pytest.fixture
def stub(server: RunningServer) -> Iterator[interest_pb2_grpc.InterestServiceStub]:
    """A raw stub over a real channel to `server`."""
    with grpc.insecure_channel(server.target) as channel:
        yield interest_pb2_grpc.InterestServiceStub(channel)


@pytest.fixture
def catalog(stub: interest_pb2_grpc.InterestServiceStub) -> list[pb.Item]:
    """The test catalog, upserted through the API."""
    items = catalog_items()
    resp = stub.UpsertItems(iter([pb.UpsertItemsRequest(items=items)]), timeout=60)
    assert resp.upserted == len(items)
    return items


def event(event_id: str, user_id: str, item_id: str, kind: int = pb.EVENT_TYPE_LIKE,
          ts: int = 0, value: float | None = None) -> pb.Event:
    """A protobuf event."""
    ev = pb.Event(event_id=event_id, user_id=user_id, item_id=item_id, type=kind,
                  timestamp_ms=ts)
    if value is not None:
        ev.value = value
    return ev


@dataclass
class ServerProcess:
    """An `interest-server serve` child process."""

    proc: subprocess.Popen
    port: int

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def start_server_process(redis_url: str, timeout_s: float = 120.0,
                         extra_args: tuple[str, ...] = ()) -> ServerProcess:
    """Start `interest-server serve` on a free port and wait until it reports SERVING."""
    env = server_child_env()
    proc = subprocess.Popen(
        [sys.executable, "-m", "interest_server.cli", "serve", "--host", "127.0.0.1",
         "--port", "0", "--redis-url", redis_url, *extra_args],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    deadline = time.monotonic() + timeout_s
    assert proc.stdout is not None
    lines = []
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        match = re.search(r"listening on .*:(\d+)", line)
        if match:
            return ServerProcess(proc, int(match.group(1)))
    proc.kill()
    raise RuntimeError("server process did not start:\n" + "".join(lines[-30:]))


@pytest.fixture
def two_servers(redis_client: redis.Redis, redis_server: str, server_args: tuple[str, ...]
                ) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    """Two `interest-server serve` processes on the test's Redis, started in parallel."""
    procs: list[ServerProcess] = []
    threads = [threading.Thread(target=lambda: procs.append(
        start_server_process(redis_server, extra_args=server_args))) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert len(procs) == 2, "both server processes must start"
        yield procs[0], procs[1]
    finally:
        for p in procs:
            p.stop()


@pytest.fixture
def make_server(redis_client: redis.Redis, redis_server: str, encoder: TextEncoder,
                server_overrides: dict[str, object]) -> Iterator:
    """Start servers on the test's Redis with extra settings: make(max_tenants=3)."""
    started: list[RunningServer] = []

    def make(**overrides: object) -> RunningServer:
        running = create_server(settings_for(redis_server, **server_overrides, **overrides),
                                encoder=encoder)
        started.append(running)
        return running

    yield make
    for running in started:
        running.stop(grace_s=0.5)
