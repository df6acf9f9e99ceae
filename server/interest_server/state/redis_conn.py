"""Redis clients: one standalone server or a Redis Cluster, behind the same calls.

Everything the service sends works on both, with one exception redis-py makes: a cluster
pipeline refuses EVALSHA. `ScriptBatch` pipelines a script's calls per cluster node instead, so a
batch of users costs one round trip per node, as it costs one on a single Redis.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeAlias

import redis
from redis.cluster import RedisCluster
from redis.commands.core import Script

AnyRedis: TypeAlias = redis.Redis | RedisCluster
"""A standalone client or a cluster client."""

REDIS_ERRORS = (redis.RedisError, redis.exceptions.RedisClusterException)
"""What a Redis call can raise when the store is down, standalone or cluster (redis-py's
cluster client raises RedisClusterException, not a RedisError, when it cannot map the cluster)."""
_MOVED_RETRIES = 3
RESP_PROTOCOL = 2
"""The Redis protocol the service speaks: RESP2, pinned rather than left to redis-py's default.

redis-py 8 defaults to RESP3, and on a RESP3 connection it also sends `CLIENT MAINT_NOTIFICATIONS
ON` (push notifications of a managed Redis's maintenance) after HELLO. The service uses no RESP3
feature (no client-side caching, no push messages: pub/sub works on RESP2), and that extra
handshake command is one more permission a restricted ACL user would need: Redis 6.x checks the
ACL before it looks the subcommand up, so it logs a denied `client` on every connection (Redis
7.0 answers "unknown subcommand" first and logs nothing, which is why only one build showed it).
With RESP2 the handshake is AUTH (and CLIENT SETINFO, which redis-py tolerates being refused),
the same on every Redis and every redis-py major. A `?protocol=3` in the URL still overrides it.
"""


def connect_redis(url: str, timeout_s: float, cluster: bool = False) -> AnyRedis:
    """A client with bounded timeouts, so a stalled Redis turns into UNAVAILABLE, not a hang.
    With `cluster`, `url` is any node of a Redis Cluster; the client discovers the others.
    Both speak RESP_PROTOCOL."""
    if cluster:
        return RedisCluster.from_url(url, socket_timeout=timeout_s,
                                     socket_connect_timeout=timeout_s, protocol=RESP_PROTOCOL)
    return redis.Redis.from_url(url, socket_timeout=timeout_s,
                                socket_connect_timeout=timeout_s, health_check_interval=10,
                                protocol=RESP_PROTOCOL)


def is_cluster(client: AnyRedis) -> bool:
    """Whether `client` talks to a Redis Cluster."""
    return isinstance(client, RedisCluster)


def probe_client(client: AnyRedis, url: str, timeout_s: float) -> AnyRedis:
    """A client like `client` (same address, auth, TLS) with a shorter timeout, for health
    probes: one connection for a standalone Redis; for a cluster, a new cluster client from
    the same `url` (ping() then reaches every primary)."""
    if is_cluster(client):
        return connect_redis(url, timeout_s, cluster=True)
    pool = client.connection_pool
    kwargs = dict(pool.connection_kwargs, socket_timeout=timeout_s,
                  socket_connect_timeout=timeout_s)
    return redis.Redis(connection_pool=redis.ConnectionPool(
        connection_class=pool.connection_class, max_connections=1, **kwargs))


def ping(client: AnyRedis) -> bool:
    """PING every primary (a cluster) or the one server; raises RedisError when one fails."""
    if is_cluster(client):
        return bool(client.ping(target_nodes=RedisCluster.PRIMARIES))
    return bool(client.ping())


class ScriptBatch:
    """Calls of one Lua script for many key groups (each within one hash slot), sent as one
    pipeline per node; results come back in call order."""

    def __init__(self, client: AnyRedis, script: Script) -> None:
        self.client = client
        self.script = script
        self._calls: list[tuple[Sequence[str], Sequence[Any]]] = []

    def add(self, keys: Sequence[str], args: Sequence[Any]) -> None:
        """Queue one call."""
        self._calls.append((keys, args))

    def execute(self) -> list[Any]:
        """Run every queued call; raises the first error (nothing queued is retried)."""
        calls, self._calls = self._calls, []
        if not calls:
            return []
        if not is_cluster(self.client):
            pipe = self.client.pipeline(transaction=False)
            for keys, args in calls:
                self.script(keys=keys, args=args, client=pipe)
            return pipe.execute()
        return self._execute_cluster(calls)

    def _execute_cluster(self, calls: list[tuple[Sequence[str], Sequence[Any]]]) -> list[Any]:
        cluster: RedisCluster = self.client  # type: ignore[assignment]
        results: list[Any] = [None] * len(calls)
        todo = list(range(len(calls)))
        for attempt in range(_MOVED_RETRIES + 1):
            by_node: dict[str, list[int]] = {}
            nodes = {}
            for i in todo:
                node = cluster.get_node_from_key(calls[i][0][0])
                by_node.setdefault(node.name, []).append(i)
                nodes[node.name] = node
            moved: list[int] = []
            for name, indices in by_node.items():
                pipe = nodes[name].redis_connection.pipeline(transaction=False)
                for i in indices:
                    keys, args = calls[i]
                    self.script(keys=keys, args=args, client=pipe)
                replies = pipe.execute(raise_on_error=False)
                for i, reply in zip(indices, replies, strict=True):
                    if isinstance(reply, redis.ResponseError) and str(reply).startswith(
                            "MOVED") and attempt < _MOVED_RETRIES:
                        moved.append(i)  # the slot moved (resharding): not applied there
                        # (an ASK, mid-migration, raises: the caller's retry finds it settled)
                    elif isinstance(reply, Exception):
                        raise reply
                    else:
                        results[i] = reply
            if not moved:
                return results
            cluster.nodes_manager.initialize()  # learn the new slot owners, then resend
            todo = moved
        raise AssertionError("unreachable")  # pragma: no cover


__all__ = ["REDIS_ERRORS", "RESP_PROTOCOL", "AnyRedis", "ScriptBatch", "connect_redis",
           "is_cluster", "ping", "probe_client"]
