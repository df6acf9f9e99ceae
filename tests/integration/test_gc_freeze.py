"""Start-up objects leave the cyclic GC while a server runs, and come back when it stops.

gc.freeze() moves every tracked object into a permanent generation that collections skip and
gc.get_objects() does not list; gc.unfreeze() puts them back. So "the server's objects are frozen"
is checked as: the engine, the gRPC server and the watch hub, built by create_server, are tracked
by the GC yet missing from gc.get_objects() while the server runs (a full collection does not
thaw them), and listed again after stop(). A freeze count alone proves little: the test process
has thousands of objects of its own that any gc.freeze() call would count.
"""

from __future__ import annotations

import gc

import redis
from interest_server.api.app import create_server
from interest_server.model.encoder import TextEncoder

from .conftest import settings_for


def _collected_by_gc(obj: object) -> bool:
    """Whether obj sits in a generation the cyclic GC walks (not in the frozen one)."""
    return any(o is obj for o in gc.get_objects())


def test_startup_objects_are_frozen_until_stop(redis_client: redis.Redis, redis_server: str,
                                                encoder: TextEncoder) -> None:
    gc.unfreeze()
    assert gc.get_freeze_count() == 0
    running = create_server(settings_for(redis_server), encoder=encoder)
    built = {"engine": running.engine, "grpc server": running.server, "watch hub": running.watch}
    try:
        assert all(gc.is_tracked(obj) for obj in built.values())
        frozen = gc.get_freeze_count()
        assert frozen > 1000  # the model, the index, grpc and redis clients
        walked = [name for name, obj in built.items() if _collected_by_gc(obj)]
        assert not walked, f"not frozen by create_server: {walked}"
        gc.collect()  # a full pass skips them and leaves them frozen
        assert not any(_collected_by_gc(obj) for obj in built.values())
    finally:
        running.stop(grace_s=0.5)
    assert gc.get_freeze_count() == 0
    thawed = [name for name, obj in built.items() if _collected_by_gc(obj)]
    assert thawed == list(built), "stop() left start-up objects frozen"
