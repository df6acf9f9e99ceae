"""Start-up objects leave the cyclic GC while a server runs, and come back when it stops."""

from __future__ import annotations

import gc

import redis
from interest_server.app import create_server
from interest_server.encoder import TextEncoder

from .conftest import settings_for


def test_startup_objects_are_frozen_until_stop(redis_client: redis.Redis, redis_server: str,
                                                encoder: TextEncoder) -> None:
    gc.unfreeze()
    running = create_server(settings_for(redis_server), encoder=encoder)
    try:
        frozen = gc.get_freeze_count()
        assert frozen > 1000  # the model, the index, grpc and redis clients
        gc.collect()  # a full pass now skips them
        assert gc.get_freeze_count() >= frozen - 100
    finally:
        running.stop(grace_s=0.5)
    assert gc.get_freeze_count() == 0
