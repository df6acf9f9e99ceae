"""Acked means durable: a SIGKILLed Redis keeps every acked event, with appendfsync `always` and
with `everysec` (the embedded Redis' default and Redis' own).

SIGKILL ends the redis-server process, not the kernel: what Redis wrote to its AOF before it
replied is in the page cache and reaches the file whatever the fsync policy, so with `everysec`
too a process kill loses nothing acked (docs/guarantees.md, "How durable, exactly"). Not shown
here: what `everysec` can lose on a power loss or kernel crash (about the last second), or on a
process crash while a slow disk makes Redis hold back its AOF write behind a running fsync (up
to 2 s).
"""

from __future__ import annotations

import random
import threading
import time
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from interest.v1 import interest_pb2 as pb
from interest.v1 import interest_pb2_grpc
from interest_server.api.app import create_server

from .conftest import (
    batches,
    catalog_items,
    check_all,
    check_user,
    connect,
    item_vectors,
    make_events,
    new_store,
    settings_for,
    stored_ids,
)

pytestmark = pytest.mark.redis_sensitive

EVENTS = 10_000
BATCH = 50
USERS = [f"durable-{n}" for n in range(5)]
ACKED = (pb.ACK_STATUS_APPLIED, pb.ACK_STATUS_DUPLICATE)


def _wait_serving(channel: grpc.Channel, within_s: float) -> None:
    health = health_pb2_grpc.HealthStub(channel)
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        try:
            if health.Check(health_pb2.HealthCheckRequest(), timeout=1).status == \
                    health_pb2.HealthCheckResponse.SERVING:
                return
        except grpc.RpcError:
            pass
        time.sleep(0.05)
    pytest.fail(f"server not SERVING within {within_s} s of Redis coming back")


def _run(seed: int, tmp_path: Path, encoder,  # noqa: ANN001
         appendfsync: str = "always") -> None:
    rng = random.Random(seed)
    events = make_events(rng, EVENTS, USERS, prefix=f"s{seed}")
    by_id = {ev.event_id: ev for ev in events}
    messages = batches(events, BATCH, prefix=f"s{seed}")
    # Kill after a random number of acked batches, plus a random sub-batch delay, so the kill
    # lands anywhere in the write path of the batches still in flight.
    kill_after = rng.randrange(5, len(messages) - 20)
    kill_delay_s = rng.uniform(0.0, 0.02)

    store = new_store(tmp_path / f"redis-{seed}", appendfsync=appendfsync)
    running = create_server(settings_for(store.url, redis_timeout_s=1.0), encoder=encoder)
    acked: set[str] = set()
    killer: threading.Timer | None = None
    try:
        with grpc.insecure_channel(running.target) as channel:
            stub = interest_pb2_grpc.InterestServiceStub(channel)
            stub.UpsertItems(iter([pb.UpsertItemsRequest(items=catalog_items())]), timeout=60)
            call = stub.StreamEvents(iter(messages), timeout=120)
            broke: grpc.RpcError | None = None
            try:
                for n, ack in enumerate(call, 1):
                    for a in ack.acks:
                        assert a.status in ACKED, (a.event_id, a.status, a.message)
                        acked.add(a.event_id)
                    if n == kill_after:
                        killer = threading.Timer(kill_delay_s, store.kill)
                        killer.start()
            except grpc.RpcError as err:
                broke = err
            assert killer is not None
            killer.join()
            assert broke is not None, "the stream finished before Redis was killed"
            assert broke.code() == grpc.StatusCode.UNAVAILABLE, broke

            store.start()  # same port, same data directory: replays the AOF
            client = connect(store.url)
            try:
                assert client.config_get("appendfsync") == {"appendfsync": appendfsync}
                vectors = item_vectors(client)
                stored: set[str] = set()
                for user in USERS:
                    ids = stored_ids(client, user, by_id)
                    stored |= set(ids)
                    # The oracle applies exactly what survived; it must be a superset of the
                    # acked events, and the state must equal folding exactly those in.
                    check_user(client, user, [by_id[i] for i in ids], vectors)
                lost = acked - stored
                assert not lost, f"{len(lost)} acked event(s) lost, e.g. {sorted(lost)[:5]}"
                assert stored <= set(by_id)

                # Resume: resend everything not acked; the server answers DUPLICATE for what
                # had landed without an ack, and the end state is every event exactly once.
                _wait_serving(channel, within_s=5.0)
                rest = [ev for ev in events if ev.event_id not in acked]
                resent = stub.StreamEvents(iter(batches(rest, BATCH, prefix=f"r{seed}")),
                                           timeout=120)
                duplicates = 0
                for ack in resent:
                    assert all(a.status in ACKED for a in ack.acks), ack
                    duplicates += ack.duplicates
                assert duplicates == len(stored - acked)
                checked = check_all(client, events, USERS)
            finally:
                client.close()
        print(f"appendfsync {appendfsync}, seed {seed}: killed after {kill_after} batches "
              f"(+{kill_delay_s * 1000:.1f} ms); "
              f"acked {len(acked)}, stored {len(stored)} (unacked but stored "
              f"{len(stored - acked)}), acked-but-lost {len(lost)}, checked {checked} events")
    finally:
        if killer is not None:
            killer.cancel()
        running.stop(grace_s=0.5)
        store.stop()


@pytest.mark.parametrize("appendfsync", ["always", "everysec"])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_acked_events_survive_redis_sigkill(seed: int, appendfsync: str, tmp_path: Path,
                                            encoder) -> None:  # noqa: ANN001
    _run(seed, tmp_path, encoder, appendfsync)


@pytest.mark.slow
@pytest.mark.parametrize("appendfsync", ["always", "everysec"])
@pytest.mark.parametrize("seed", range(4, 24))
def test_acked_events_survive_redis_sigkill_many_seeds(seed: int, appendfsync: str,
                                                       tmp_path: Path,
                                                       encoder) -> None:  # noqa: ANN001
    _run(seed, tmp_path, encoder, appendfsync)
