"""Security-test fixtures: module-scoped servers, a keyspace snapshot, throwaway certificates."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
import redis
from interest.v1 import interest_pb2 as pb
from interest.v1 import interest_pb2_grpc
from interest_server.api.app import RunningServer, create_server
from interest_server.model.encoder import TextEncoder

from ..integration.conftest import catalog_items, encoder, settings_for  # noqa: F401


def start_server(redis_url: str, model: TextEncoder, **overrides: object) -> RunningServer:
    """A server on loopback with test settings and the given overrides."""
    return create_server(settings_for(redis_url, **overrides), encoder=model)


def upsert_catalog(stub: interest_pb2_grpc.InterestServiceStub,
                   metadata: tuple[tuple[str, str], ...] = ()) -> None:
    """The test catalog, upserted through the API."""
    items = catalog_items()
    resp = stub.UpsertItems(iter([pb.UpsertItemsRequest(items=items)]), timeout=120,
                            metadata=metadata)
    assert resp.upserted == len(items)


def keyspace(client: redis.Redis) -> dict[bytes, bytes | None]:
    """Every key with its DUMP (serialized value): equal snapshots mean an unchanged keyspace."""
    keys = sorted(client.scan_iter(count=1000))
    pipe = client.pipeline(transaction=False)
    for key in keys:
        pipe.dump(key)
    return dict(zip(keys, pipe.execute(), strict=True))


@pytest.fixture(scope="module")
def module_redis(redis_server: str) -> Iterator[redis.Redis]:
    """A client on the session's Redis, flushed when the module starts."""
    client = redis.Redis.from_url(redis_server)
    client.flushall()
    try:
        yield client
    finally:
        client.close()


@pytest.fixture(scope="module")
def module_server(module_redis: redis.Redis, redis_server: str,
                  encoder: TextEncoder) -> Iterator[RunningServer]:  # noqa: F811
    """One server for the whole module, on a flushed Redis holding the test catalog."""
    running = start_server(redis_server, encoder)
    try:
        with grpc.insecure_channel(running.target) as channel:
            upsert_catalog(interest_pb2_grpc.InterestServiceStub(channel))
        yield running
    finally:
        running.stop(grace_s=0.5)


@dataclass(frozen=True)
class Certs:
    """PEM files: a CA, a server cert for 127.0.0.1/localhost and a client cert it signed, and
    a second, unrelated CA with a client cert of its own."""

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    rogue_ca: Path
    rogue_client_cert: Path
    rogue_client_key: Path


def _openssl(*args: str | Path) -> None:
    subprocess.run(["openssl", *map(str, args)], check=True, capture_output=True, timeout=30)


def _make_ca(d: Path, name: str) -> tuple[Path, Path]:
    cert, key = d / f"{name}.crt", d / f"{name}.key"
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
             "-nodes", "-keyout", key, "-out", cert, "-days", "2", "-subj", f"/CN={name}",
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    return cert, key


def _make_leaf(d: Path, name: str, ca: tuple[Path, Path], extensions: str) -> tuple[Path, Path]:
    cert, key, csr, ext = (d / f"{name}.crt", d / f"{name}.key", d / f"{name}.csr",
                           d / f"{name}.ext")
    ext.write_text(extensions)
    _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", key, "-out", csr, "-subj", f"/CN={name}")
    _openssl("x509", "-req", "-in", csr, "-CA", ca[0], "-CAkey", ca[1], "-CAcreateserial",
             "-out", cert, "-days", "2", "-extfile", ext)
    return cert, key


NO_OPENSSL = "the openssl command is not installed: no certificates to test TLS with"


@pytest.fixture(scope="session")
def maybe_certs(tmp_path_factory: pytest.TempPathFactory) -> Certs | None:
    """Throwaway certificates made with the openssl command line; None without it, so tests
    that also cover plaintext (the auth matrix) still run those cases and skip only the rest."""
    if shutil.which("openssl") is None:
        return None
    return _make_certs(tmp_path_factory.mktemp("certs"))


@pytest.fixture(scope="session")
def certs(maybe_certs: Certs | None) -> Certs:
    """The certificates; skips the test without openssl."""
    if maybe_certs is None:
        pytest.skip(NO_OPENSSL)
    return maybe_certs


def _make_certs(d: Path) -> Certs:
    """Both CAs and their certificates, in `d`."""
    ca = _make_ca(d, "test-ca")
    rogue = _make_ca(d, "rogue-ca")
    server = _make_leaf(d, "server", ca, "basicConstraints=CA:FALSE\n"
                        "keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n"
                        "subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    client_ext = ("basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n"
                  "extendedKeyUsage=clientAuth\n")
    client = _make_leaf(d, "client", ca, client_ext)
    rogue_client = _make_leaf(d, "rogue-client", rogue, client_ext)
    return Certs(ca[0], server[0], server[1], client[0], client[1], rogue[0], rogue_client[0],
                 rogue_client[1])
