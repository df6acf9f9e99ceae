"""A Redis Cluster on loopback for the tests: EmbeddedRedis nodes with slots split evenly."""

from __future__ import annotations

import logging
import socket
import time
from pathlib import Path
from types import TracebackType

import redis
from interest_server.ops.redis_launcher import PORT_ATTEMPTS, EmbeddedRedis, free_port

logger = logging.getLogger(__name__)

CLUSTER_SLOTS = 16384
CLUSTER_BUS_OFFSET = 10000
"""A cluster node also listens on port + 10000 for the cluster bus (Redis 6 cannot move it)."""


def free_cluster_port() -> int:
    """A port free a moment ago whose cluster-bus twin (port + 10000) is free too."""
    for _ in range(200):
        port = free_port()
        if port + CLUSTER_BUS_OFFSET > 65535:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port + CLUSTER_BUS_OFFSET))
            except OSError:
                continue
        return port
    raise RuntimeError("found no free port pair (p, p + 10000) for a redis cluster node")


class EmbeddedRedisCluster:
    """A Redis Cluster of `primaries` redis-server processes on loopback, each an
    EmbeddedRedis with `cluster-enabled yes`, slots split evenly, no replicas.

    For tests, benchmarks and trying the cluster path on one machine; production clusters are
    run by their operators. `url` names one node: cluster clients discover the rest from it.
    """

    def __init__(self, data_dir: Path, primaries: int = 3, node_timeout_ms: int = 2000,
                 binary: str | None = None) -> None:
        if primaries < 1:
            raise ValueError(f"a cluster needs at least one primary, not {primaries}")
        self.data_dir = Path(data_dir).resolve()
        self.nodes = [
            EmbeddedRedis(self.data_dir / f"node{i}", binary=binary, extra_config={
                "cluster-enabled": "yes",
                "cluster-config-file": "nodes.conf",
                "cluster-node-timeout": str(node_timeout_ms),
                # One primary per slot range and no replicas: keep serving the slots it has.
                "cluster-require-full-coverage": "no",
            }) for i in range(primaries)]

    @property
    def url(self) -> str:
        """A seed node's URL."""
        return self.nodes[0].url

    @property
    def ports(self) -> list[int]:
        """Every node's port."""
        return [n.port for n in self.nodes]

    def start(self, timeout_s: float = 30.0) -> None:
        """Start the nodes, assign slots, join them, and wait for `cluster_state:ok` on all."""
        deadline = time.monotonic() + timeout_s
        try:
            for node in self.nodes:
                self._start_node(node)
            clients = [node._client(socket_timeout=5.0) for node in self.nodes]
            try:
                if int(clients[0].execute_command("CLUSTER", "INFO").decode().split(
                        "cluster_slots_assigned:")[1].split()[0]) == 0:
                    self._form(clients)
                self._wait_ok(clients, deadline)
            finally:
                for client in clients:
                    client.close()
        except BaseException:
            self.stop()
            raise
        logger.info("redis cluster of %d primaries on ports %s", len(self.nodes), self.ports)

    @staticmethod
    def _start_node(node: EmbeddedRedis) -> None:
        auto = node.port == 0
        for attempt in range(1, PORT_ATTEMPTS + 1):
            if auto:
                node.port = free_cluster_port()
            try:
                node.start()
                return
            except RuntimeError:
                if not auto or attempt == PORT_ATTEMPTS:
                    raise
                logger.info("cluster node port %d was taken; trying another", node.port)

    def _form(self, clients: list[redis.Redis]) -> None:
        share = CLUSTER_SLOTS // len(clients)
        for i, client in enumerate(clients):
            first = i * share
            last = CLUSTER_SLOTS - 1 if i == len(clients) - 1 else first + share - 1
            client.execute_command("CLUSTER", "ADDSLOTS", *range(first, last + 1))
        for client in clients[1:]:
            client.execute_command("CLUSTER", "MEET", "127.0.0.1", str(self.nodes[0].port))

    @staticmethod
    def _wait_ok(clients: list[redis.Redis], deadline: float) -> None:
        while True:
            infos = [c.execute_command("CLUSTER", "INFO").decode() for c in clients]
            if all("cluster_state:ok" in info and f"cluster_known_nodes:{len(clients)}" in info
                   for info in infos):
                return
            if time.monotonic() > deadline:
                raise RuntimeError("the redis cluster did not reach cluster_state:ok: "
                                   + " | ".join(i.splitlines()[0] for i in infos))
            time.sleep(0.1)

    def stop(self) -> None:
        """Stop every node (safe to call more than once)."""
        for node in self.nodes:
            node.stop()

    def __enter__(self) -> EmbeddedRedisCluster:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
