"""The service under a Redis ACL user allowed only what it uses, and over (mutual) TLS."""

from __future__ import annotations

import contextlib
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

import grpc
import pytest
import redis
from interest.v1 import interest_pb2 as pb
from interest.v1 import interest_pb2_grpc
from interest_server.encoder import TextEncoder
from interest_server.redis_launcher import EmbeddedRedisCluster, find_redis_server, free_port

from ..integration.conftest import event
from .conftest import Certs, start_server, upsert_catalog

USER = "interest-svc"
PASSWORD = "acl-pw-7c1d9e"
# Found by running every flow below against a fresh Redis and reading INFO commandstats, plus
# what the paths this run does not reach need (HGETALL/LRANGE/SMEMBERS/ZRANGE: reading a user
# still in record format 1; EXPIRE: user_ttl_s > 0; PERSIST/PTTL: user_ttl_s = 0).
# AUTH and HELLO need no permission. The Lua script's own commands are checked too.
COMMANDS = [
    "ping", "evalsha", "script|load", "script|exists",
    "get", "mget", "set", "del", "exists", "getrange", "hgetall", "hmget", "hset",
    "lrange", "sadd", "srem", "smembers", "sscan", "zrange", "zincrby", "zrevrange",
    "xadd", "xread", "xrevrange", "expire", "persist", "pttl", "publish", "subscribe",
    "unsubscribe",
]
CLUSTER_COMMANDS = ["cluster|slots", "command"]
"""What redis-py's cluster client sends besides: the slot map, and the command table it routes
keys with (checked by test_every_flow_works_under_the_restricted_user_on_a_cluster)."""
CHANNEL_PATTERNS = ["u:*"]  # user-change notifications for WatchRecommendations
KEY_PATTERNS = ["u:*", "item:*", "catalog:*", "pop"]


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
    # redis-py announces itself with CLIENT SETINFO, a command Redis 7.2 introduced.
    with contextlib.suppress(redis.ResponseError):
        module_redis.execute_command("ACL", "SETUSER", USER, "+client|setinfo")
    module_redis.execute_command("ACL", "LOG", "RESET")
    try:
        yield module_redis
    finally:
        module_redis.execute_command("ACL", "DELUSER", USER)


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
                with contextlib.suppress(redis.ResponseError):
                    admin.execute_command("ACL", "SETUSER", USER, "+client|setinfo")
            server = start_server(acl_url(cluster.url), encoder, redis_cluster=True)
            try:
                with grpc.insecure_channel(server.target) as channel:
                    every_flow(interest_pb2_grpc.InterestServiceStub(channel))
                time.sleep(1.2)
            finally:
                server.stop(grace_s=0.5)
            assert [d for admin in admins for d in denials(admin)] == []
        finally:
            for admin in admins:
                admin.close()


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


@pytest.fixture
def tls_redis(certs: Certs, tmp_path: Path) -> Iterator[str]:
    """A redis-server speaking only mutual TLS, whose only user is the restricted one; yields
    its rediss:// URL with the user's credentials and the client certificate."""
    port = free_port()
    acl = ["interest-svc", "on", f">{PASSWORD}", "resetchannels",
           *[f"&{p}" for p in CHANNEL_PATTERNS],
           *[f"~{p}" for p in KEY_PATTERNS], "-@all", *[f"+{c}" for c in COMMANDS]]
    proc = subprocess.Popen(
        [find_redis_server(), "--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1",
         "--tls-cert-file", str(certs.server_cert), "--tls-key-file", str(certs.server_key),
         "--tls-ca-cert-file", str(certs.ca), "--tls-auth-clients", "yes", "--save", "",
         "--appendonly", "no", "--dir", str(tmp_path), "--user", "default", "off",
         "--user", *acl], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    query = "&".join(f"{k}={quote(str(v), safe='/')}" for k, v in (
        ("ssl_ca_certs", certs.ca), ("ssl_certfile", certs.client_cert),
        ("ssl_keyfile", certs.client_key)))
    url = f"rediss://{USER}:{PASSWORD}@127.0.0.1:{port}/0?{query}"
    try:
        for _ in range(50):
            if proc.poll() is not None:
                pytest.skip("this redis-server was built without TLS")
            try:
                redis.Redis.from_url(url).ping()
                break
            except redis.ConnectionError:
                time.sleep(0.1)
        yield url
    finally:
        proc.kill()
        proc.wait()


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
