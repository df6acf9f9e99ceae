"""The service under a Redis ACL user allowed only what it uses, and over (mutual) TLS."""

from __future__ import annotations

import contextlib
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

import grpc
import pytest
import redis
from interest.v1 import interest_pb2 as pb
from interest.v1 import interest_pb2_grpc
from interest_server.model.encoder import TextEncoder
from interest_server.ops.redis_launcher import find_redis_server
from interest_server.state.redis_conn import RESP_PROTOCOL, connect_redis, probe_client

from tests.redis_cluster import EmbeddedRedisCluster, free_port

from ..integration.conftest import event
from .conftest import Certs, start_server, upsert_catalog

pytestmark = pytest.mark.redis_sensitive

USER = "interest-svc"
PASSWORD = "acl-pw-7c1d9e"
# Found by running every flow below against a fresh Redis and reading INFO commandstats, plus
# what the paths this run does not reach need (HGETALL/LRANGE/SMEMBERS/ZRANGE: reading a user
# still in record format 1; EXPIRE: user_ttl_s > 0; PERSIST/PTTL: user_ttl_s = 0).
# AUTH and HELLO need no permission. The Lua script's own commands are checked too.
# The connection handshake needs nothing more because the service speaks RESP2
# (redis_conn.RESP_PROTOCOL): on RESP3 redis-py 8 also sends CLIENT MAINT_NOTIFICATIONS ON,
# which Redis 6.x denies (and logs) unless `+client|maint_notifications` is granted.
COMMANDS = [
    "ping", "evalsha", "script|load", "script|exists",
    "get", "mget", "set", "del", "exists", "getrange", "hgetall", "hmget", "hset", "hdel",
    "lrange", "sadd", "srem", "smembers", "sscan", "zrange", "zincrby", "zrevrange",
    "xadd", "xread", "xrevrange", "expire", "persist", "pttl", "publish", "subscribe",
    "unsubscribe",
]
CLUSTER_COMMANDS = ["cluster|slots", "command"]
"""What redis-py's cluster client sends besides: the slot map, and the command table it routes
keys with (checked by test_every_flow_works_under_the_restricted_user_on_a_cluster)."""
CHANNEL_PATTERNS = ["u:*"]  # user-change notifications for WatchRecommendations
KEY_PATTERNS = ["u:*", "item:*", "catalog:*", "pop", "models:*"]  # models: published models (read)


def acl_url(redis_url: str) -> str:
    """The test Redis URL with the ACL user's credentials in it."""
    parts = urlsplit(redis_url)
    host = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit(parts._replace(netloc=f"{USER}:{PASSWORD}@{host}"))


@pytest.fixture
def acl_user(module_redis: redis.Redis) -> Iterator[redis.Redis]:
    """Create the restricted user (and clear the ACL log); yields the admin client."""
    module_redis.flushall()
    module_redis.execute_command(
        "ACL", "SETUSER", USER, "reset", "on", f">{PASSWORD}", "resetchannels",
        *[f"&{p}" for p in CHANNEL_PATTERNS],
        *[f"~{p}" for p in KEY_PATTERNS], "-@all", *[f"+{c}" for c in COMMANDS])
    allow_setinfo(module_redis)
    module_redis.execute_command("ACL", "LOG", "RESET")
    try:
        yield module_redis
    finally:
        module_redis.execute_command("ACL", "DELUSER", USER)


def allow_setinfo(admin: redis.Redis) -> None:
    """Grant CLIENT SETINFO, which redis-py sends on every connection (library name and
    version) and whose refusal it ignores: Redis 7.2+ know the subcommand and Redis 6.x checks
    the ACL before looking it up, so both log a denial without this rule; Redis 7.0 and 7.1
    answer "unknown subcommand" before any ACL check, and reject the rule itself as naming an
    unknown subcommand, hence the suppress."""
    with contextlib.suppress(redis.ResponseError):
        admin.execute_command("ACL", "SETUSER", USER, "+client|setinfo")


def spoken_protocol(client: redis.Redis) -> int:
    """The RESP version `client`'s connection speaks, as the server sees it (HELLO without a
    version only reports; a RESP2 reply is a flat list, a RESP3 one a map)."""
    reply = client.execute_command("HELLO")
    fields = reply if isinstance(reply, dict) else dict(zip(reply[::2], reply[1::2],
                                                            strict=True))
    return int(fields[b"proto"])


def denials(admin: redis.Redis) -> list[dict]:
    return [e for e in admin.acl_log() if e.get("username") == USER]


def every_flow(stub: interest_pb2_grpc.InterestServiceStub) -> None:
    """Every RPC the service has, the paths a restricted Redis user must allow."""
    upsert_catalog(stub)
    assert stub.Recommend(pb.RecommendRequest(user_id="a"), timeout=30).items
    watch = stub.WatchRecommendations(pb.WatchRecommendationsRequest(user_id="a"),
                                      timeout=30)
    assert next(watch).user_version == 0  # SUBSCRIBE works under the user
    ack = stub.IngestEvents(pb.EventBatch(events=[event("e1", "a", "1"),
                                                  event("e2", "a", "2")]), timeout=30)
    assert ack.applied == 2
    assert next(watch).user_version == ack.acks[0].user_version  # and PUBLISH
    watch.cancel()
    ack = stub.IngestEvents(pb.EventBatch(events=[event("e1", "a", "1"),
                                                  event("e2", "a", "3")]), timeout=30)
    assert (ack.duplicates, ack.rejected) == (1, 1)
    acks = list(stub.StreamEvents(iter([pb.EventBatch(events=[event("e3", "a", "4")])]),
                                  timeout=30))
    assert acks[0].applied == 1
    written = stub.SetAttributeSynonyms(pb.SetAttributeSynonymsRequest(entries=[
        pb.AttributeSynonyms(attribute="genre", value="Mystery", synonyms=["悬疑"]),
        pb.AttributeSynonyms(attribute="genre", value="Romance", synonyms=["爱情"])]), timeout=30)
    assert written.total_synonyms == 2
    assert stub.SetAttributeSynonyms(pb.SetAttributeSynonymsRequest(entries=[
        pb.AttributeSynonyms(attribute="genre", value="Romance")]), timeout=30).deleted == 1
    stub.EncodeInterest(pb.EncodeInterestRequest(
        user_id="a", text="I love mystery films, I hate romance"), timeout=30)
    stub.EncodeInterest(pb.EncodeInterestRequest(
        user_id="a", text="I like comedies", mode=pb.ENCODE_MODE_MERGE), timeout=30)
    assert stub.Recommend(pb.RecommendRequest(user_id="a", k=5), timeout=30).items
    state = stub.GetUserState(pb.GetUserStateRequest(user_id="a", include_vector=True),
                              timeout=30)
    assert state.event_count == 3 and state.interest_vector
    assert stub.DeleteItems(pb.DeleteItemsRequest(item_ids=["30"]),
                            timeout=30).deleted == 1
    assert stub.DeleteUser(pb.DeleteUserRequest(user_id="a"), timeout=30).keys_deleted


@pytest.mark.parametrize("user_ttl_s", [0, 60])
def test_every_flow_works_under_the_restricted_user(acl_user: redis.Redis, redis_server: str,
                                                    encoder: TextEncoder,
                                                    user_ttl_s: int) -> None:
    server = start_server(acl_url(redis_server), encoder, user_ttl_s=user_ttl_s)
    try:
        with grpc.insecure_channel(server.target) as channel:
            every_flow(interest_pb2_grpc.InterestServiceStub(channel))
        time.sleep(1.2)  # the catalog follower's XREAD and the health monitor's PING run too
    finally:
        server.stop(grace_s=0.5)
    # A restart loads the catalog from Redis under the same user.
    start_server(acl_url(redis_server), encoder, user_ttl_s=user_ttl_s).stop(grace_s=0.5)
    assert denials(acl_user) == []


def test_every_flow_works_under_the_restricted_user_on_a_cluster(tmp_path: Path,
                                                                 encoder: TextEncoder) -> None:
    """The same user on every node of a 3-primary cluster, plus what the cluster client needs
    to learn the slot map (CLUSTER_COMMANDS)."""
    with EmbeddedRedisCluster(tmp_path / "cluster", 3) as cluster:
        admins = [redis.Redis(port=port) for port in cluster.ports]
        try:
            for admin in admins:
                admin.execute_command(
                    "ACL", "SETUSER", USER, "reset", "on", f">{PASSWORD}", "resetchannels",
                    *[f"&{p}" for p in CHANNEL_PATTERNS], *[f"~{p}" for p in KEY_PATTERNS],
                    "-@all", *[f"+{c}" for c in COMMANDS + CLUSTER_COMMANDS])
                allow_setinfo(admin)
            server = start_server(acl_url(cluster.url), encoder, redis_cluster=True)
            try:
                node = server.engine.redis.get_default_node().redis_connection
                assert spoken_protocol(node) == RESP_PROTOCOL == 2
                with grpc.insecure_channel(server.target) as channel:
                    every_flow(interest_pb2_grpc.InterestServiceStub(channel))
                time.sleep(1.2)
            finally:
                server.stop(grace_s=0.5)
            assert [d for admin in admins for d in denials(admin)] == []
        finally:
            for admin in admins:
                admin.close()


def test_the_service_speaks_resp2_whatever_redis_py_defaults_to(redis_server: str) -> None:
    """Its client, its health probe and (from the same pool settings) its pub/sub connection.
    redis-py 8 defaults to RESP3, whose handshake adds CLIENT MAINT_NOTIFICATIONS: a permission
    the user above does not have, denied on Redis 6.x (test_every_flow_works_under_...)."""
    client = connect_redis(redis_server, 5.0)
    probe = probe_client(client, redis_server, 1.0)
    try:
        assert spoken_protocol(client) == spoken_protocol(probe) == RESP_PROTOCOL == 2
        with client.pubsub() as pubsub:
            pubsub.subscribe("u:resp-check")
            assert pubsub.connection is not None
            assert pubsub.connection.protocol == 2
    finally:
        probe.close()
        client.close()


def test_the_user_can_do_nothing_else(acl_user: redis.Redis, redis_server: str) -> None:
    client = redis.Redis.from_url(acl_url(redis_server))
    try:
        assert client.ping()
        for call in (client.flushall, lambda: client.config_get("*"), lambda: client.keys("*"),
                     lambda: client.get("other:key"), lambda: client.eval("return 1", 0),
                     lambda: client.execute_command("ACL", "LIST")):
            with pytest.raises(redis.exceptions.NoPermissionError):
                call()
    finally:
        client.close()
    assert denials(acl_user)


def test_a_wrong_password_fails_startup_without_echoing_it(redis_server: str,
                                                           acl_user: redis.Redis,
                                                           encoder: TextEncoder) -> None:
    url = acl_url(redis_server).replace(PASSWORD, "wrong-pw-1234")
    with pytest.raises(redis.exceptions.AuthenticationError) as info:
        start_server(url, encoder)
    assert "wrong-pw-1234" not in str(info.value)


NO_TLS_SIGNS = (
    ("Bad directive", "tls-port"),  # Redis 6.x to 7.1 built without TLS: no such directive
    ("Failed finding TLS support",),  # Redis 7.2+ built without TLS (nor the TLS module)
)
TLS_SIGNS = ("tls-cert-file", "Failed to configure TLS")
"""What a start with a TLS port and no certificate prints: a build with TLS knows the directive
and asks for the certificate; one without says so in one of two ways."""


def tls_support(binary: str, workdir: Path) -> str | None:
    """None if `binary` was built with TLS, else why not; AssertionError for any other outcome,
    so a broken binary or a bad flag fails the test instead of skipping it."""
    cmd = [binary, "--port", "0", "--tls-port", str(free_port()), "--bind", "127.0.0.1",
           "--save", "", "--appendonly", "no", "--dir", str(workdir)]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=20)
    except subprocess.TimeoutExpired as exc:  # it serves TLS without a certificate?
        raise AssertionError(f"{binary} kept running with a TLS port and no certificate") from exc
    output = done.stdout + done.stderr
    if any(all(part in output for part in sign) for sign in NO_TLS_SIGNS):
        return f"{binary} was built without TLS support"
    if done.returncode != 0 and any(sign in output for sign in TLS_SIGNS):
        return None
    raise AssertionError(f"the TLS probe of {binary} exited {done.returncode} with neither "
                         f"sign of TLS support nor of its absence:\n{output[-2000:]}")


def test_the_tls_probe_tells_builds_apart(tmp_path: Path) -> None:
    fake = tmp_path / "redis-server"
    for text, expected in (
            ("*** FATAL CONFIG FILE ERROR (Redis 6.2.5) ***\n>>> 'tls-port \"7\"'\n"
             "Bad directive or wrong number of arguments", "built without TLS"),
            ("# Failed finding TLS support.", "built without TLS"),
            ("# No tls-cert-file configured!\n# Failed to configure TLS.", None),
            ("Segmentation fault", AssertionError)):
        fake.write_text(f"#!/bin/sh\ncat <<'EOF'\n{text}\nEOF\nexit 1\n")
        fake.chmod(0o755)
        if expected is AssertionError:
            with pytest.raises(AssertionError, match="neither sign"):
                tls_support(str(fake), tmp_path)
        elif expected is None:
            assert tls_support(str(fake), tmp_path) is None
        else:
            assert expected in str(tls_support(str(fake), tmp_path))
    # And the real binary gives one of the two answers, not an error.
    tls_support(find_redis_server(), tmp_path)


@pytest.fixture
def tls_redis(certs: Certs, tmp_path: Path) -> Iterator[str]:
    """A redis-server speaking only mutual TLS, whose only user is the restricted one; yields
    its rediss:// URL with the user's credentials and the client certificate. Skips only for a
    build without TLS (probed first); any other early exit or a server that never answers fails."""
    binary = find_redis_server()
    no_tls = tls_support(binary, tmp_path)
    if no_tls is not None:
        pytest.skip(no_tls)
    port = free_port()
    acl = ["interest-svc", "on", f">{PASSWORD}", "resetchannels",
           *[f"&{p}" for p in CHANNEL_PATTERNS],
           *[f"~{p}" for p in KEY_PATTERNS], "-@all", *[f"+{c}" for c in COMMANDS]]
    console = tmp_path / "redis-tls.log"
    with console.open("wb") as out:
        proc = subprocess.Popen(
            [binary, "--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1",
             "--tls-cert-file", str(certs.server_cert), "--tls-key-file", str(certs.server_key),
             "--tls-ca-cert-file", str(certs.ca), "--tls-auth-clients", "yes", "--save", "",
             "--appendonly", "no", "--dir", str(tmp_path), "--user", "default", "off",
             "--user", *acl], stdout=out, stderr=subprocess.STDOUT)
    query = "&".join(f"{k}={quote(str(v), safe='/')}" for k, v in (
        ("ssl_ca_certs", certs.ca), ("ssl_certfile", certs.client_cert),
        ("ssl_keyfile", certs.client_key)))
    url = f"rediss://{USER}:{PASSWORD}@127.0.0.1:{port}/0?{query}"
    try:
        wait_answering(url, proc, lambda: console.read_text(errors="replace"))
        yield url
    finally:
        proc.kill()
        proc.wait()


def wait_answering(url: str, proc: subprocess.Popen[bytes], log: Callable[[], str],
                   timeout_s: float = 10.0) -> None:
    """Return once the server at `url` answers PING; fail with its log if it exits first or
    never answers."""
    deadline = time.monotonic() + timeout_s
    while True:
        if proc.poll() is not None:
            pytest.fail(f"the TLS redis-server exited with {proc.returncode}:\n{log()[-2000:]}")
        client = redis.Redis.from_url(url, protocol=RESP_PROTOCOL, socket_timeout=2)
        try:
            client.ping()
            return
        except redis.ConnectionError as exc:
            if time.monotonic() > deadline:
                pytest.fail(f"the TLS redis-server never answered ({exc}):\n{log()[-2000:]}")
            time.sleep(0.1)
        finally:
            client.close()


def test_the_service_runs_over_mutual_tls_to_redis(tls_redis: str, encoder: TextEncoder,
                                                   certs: Certs) -> None:
    server = start_server(tls_redis, encoder)
    try:
        with grpc.insecure_channel(server.target) as channel:
            stub = interest_pb2_grpc.InterestServiceStub(channel)
            upsert_catalog(stub)
            ack = stub.IngestEvents(pb.EventBatch(events=[event("t1", "tls", "1")]), timeout=30)
            assert ack.applied == 1
            assert stub.Recommend(pb.RecommendRequest(user_id="tls"), timeout=30).items
    finally:
        server.stop(grace_s=0.5)
    # Without the client certificate the TLS handshake fails; plain TCP is refused.
    no_cert = tls_redis.split("&ssl_certfile")[0]
    for url in (no_cert, tls_redis.replace("rediss://", "redis://").split("?")[0]):
        with pytest.raises(redis.ConnectionError):
            redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2).ping()
