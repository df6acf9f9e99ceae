"""One write_record.lua call for many users (single Redis): each user's outcome is its own."""

from __future__ import annotations

import numpy as np
import redis
from interest_server.interest_model import DecayedAverageModel
from interest_server.keys import user_keys
from interest_server.user_record import UserRecord
from interest_server.user_store import WRITE_FORMAT1, WRITTEN, UserStore


def test_one_call_writes_some_users_and_refuses_others(redis_client: redis.Redis) -> None:
    store = UserStore(redis_client, DecayedAverageModel(86400.0, dim=4), 50, 86400, 86400.0)
    assert store._write_many is not None, "a single Redis gets the many-user script"
    current = UserRecord(version=3, epoch=b"\x07" * 8, vector=np.ones(4, np.float32))
    redis_client.set(user_keys("moved").record, current.encode())
    redis_client.set(user_keys("kept").record, current.encode())
    redis_client.hset(user_keys("legacy").state, mapping={"v": 2, "e": "00"})
    stale = UserRecord(version=2, epoch=b"\x07" * 8)

    def call(user: str, expected: bytes, version: int) -> tuple[list[str], list[object]]:
        new = UserRecord(version=version, epoch=b"\x07" * 8, vector=np.zeros(4, np.float32))
        return user_keys(user).all(), [expected, new.encode(), 0, "", 0, b"", ""]

    replies = store._run_writes([call("fresh", b"", 1), call("moved", stale.header(), 3),
                                 call("legacy", b"", 3), call("kept", current.header(), 4)])
    assert replies == [WRITTEN, 0, WRITE_FORMAT1, WRITTEN]
    assert UserRecord.decode(redis_client.get(user_keys("fresh").record)).version == 1
    assert UserRecord.decode(redis_client.get(user_keys("moved").record)).version == 3
    assert not redis_client.exists(user_keys("legacy").record)
    assert redis_client.hget(user_keys("legacy").state, "v") == b"2"
    assert UserRecord.decode(redis_client.get(user_keys("kept").record)).version == 4
