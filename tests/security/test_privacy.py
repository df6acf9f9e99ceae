"""Optional per-user TTL: an inactive user's keys expire; every write restarts the clock."""

from __future__ import annotations

import time
from collections.abc import Iterator

import grpc
import pytest
import redis
from interest.v1 import interest_pb2 as pb
from interest.v1 import interest_pb2_grpc
from interest_server.api.app import RunningServer
from interest_server.model.encoder import TextEncoder
from interest_server.state.keys import user_key_pattern, user_keys

from ..integration.conftest import event
from .conftest import start_server, upsert_catalog

TTL_S = 4
"""Long against the test's own steps (a write every 1.2 s, 2.8 s before a key could expire), so a
slow call on a loaded machine cannot make a refreshed key expire."""
WRITE_EVERY_S = 1.2
WRITES = 4  # 4.8 s of writing: longer than the TTL


@pytest.fixture(scope="module")
def stubs(module_redis: redis.Redis, redis_server: str, encoder: TextEncoder
          ) -> Iterator[dict[str, interest_pb2_grpc.InterestServiceStub]]:
    """Stubs to a server with user_ttl_s=TTL_S ("ttl") and one with the default 0 ("off")."""
    servers: list[RunningServer] = []
    channels: list[grpc.Channel] = []
    try:
        for ttl in (TTL_S, 0):
            servers.append(start_server(redis_server, encoder, user_ttl_s=ttl))
            channels.append(grpc.insecure_channel(servers[-1].target))
        ttl_stub, off_stub = (interest_pb2_grpc.InterestServiceStub(c) for c in channels)
        upsert_catalog(ttl_stub)
        yield {"ttl": ttl_stub, "off": off_stub}
    finally:
        for channel in channels:
            channel.close()
        for server in servers:
            server.stop(grace_s=0.5)


def keys_of(client: redis.Redis, user: str) -> set[bytes]:
    return set(client.scan_iter(match=user_key_pattern(user)))


def ttls(client: redis.Redis, user: str) -> dict[str, float]:
    return {k: client.pttl(k) / 1000 for k in user_keys(user).all() if client.exists(k)}


def ingest(stub: interest_pb2_grpc.InterestServiceStub, event_id: str, user: str,
           item: str) -> None:
    ack = stub.IngestEvents(pb.EventBatch(events=[event(event_id, user, item)]), timeout=30)
    assert ack.applied == 1


def test_inactive_user_expires_and_activity_refreshes(
        stubs: dict[str, interest_pb2_grpc.InterestServiceStub],
        module_redis: redis.Redis) -> None:
    stub, user = stubs["ttl"], "ttl-ann{1}"
    ingest(stub, "t1", user, "1")
    stub.EncodeInterest(pb.EncodeInterestRequest(user_id=user, text="I like comedies"),
                        timeout=30)
    found = ttls(module_redis, user)  # record, concepts and event log
    assert len(found) == 3 and all(0 < t <= TTL_S for t in found.values()), found
    # Keep writing, alternately events and concepts, for longer than the TTL: nothing expires.
    assert WRITES * WRITE_EVERY_S > TTL_S
    for n in range(WRITES):
        time.sleep(WRITE_EVERY_S)
        if n % 2:
            stub.EncodeInterest(pb.EncodeInterestRequest(user_id=user, text="I love westerns"),
                                timeout=30)
        else:
            ingest(stub, f"t{n + 2}", user, str(n + 2))
        assert len(keys_of(module_redis, user)) == 3  # record, concepts and event log
    assert all(t > TTL_S * 0.5 for t in ttls(module_redis, user).values())
    state = stub.GetUserState(pb.GetUserStateRequest(user_id=user), timeout=30)
    assert state.event_count == 1 + (WRITES + 1) // 2 and state.concepts
    # Reads are not activity: after TTL_S without a write, every key is gone.
    deadline = time.monotonic() + TTL_S + 3
    while keys_of(module_redis, user) and time.monotonic() < deadline:
        stub.Recommend(pb.RecommendRequest(user_id=user), timeout=30)
        time.sleep(0.2)
    assert keys_of(module_redis, user) == set()
    assert stub.GetUserState(pb.GetUserStateRequest(user_id=user), timeout=30).version == 0


def test_users_persist_with_the_ttl_off(stubs: dict[str, interest_pb2_grpc.InterestServiceStub],
                                        module_redis: redis.Redis) -> None:
    user = "ttl-off"
    ingest(stubs["ttl"], "o1", user, "1")
    assert all(t > 0 for t in ttls(module_redis, user).values())
    # Turning the TTL off: the next write of the user removes the expiries set before.
    ingest(stubs["off"], "o2", user, "2")
    assert set(ttls(module_redis, user).values()) == {-0.001}  # PTTL -1: no expiry
    stubs["ttl"].EncodeInterest(pb.EncodeInterestRequest(user_id=user, text="I like comedies"),
                                timeout=30)
    stubs["off"].EncodeInterest(pb.EncodeInterestRequest(user_id=user, text="I like dramas"),
                                timeout=30)
    assert set(ttls(module_redis, user).values()) == {-0.001}
