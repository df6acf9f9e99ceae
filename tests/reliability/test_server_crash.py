"""Server crash mid-stream: the client library reconnects to the restarted server, resends what was
not acked, and the end state equals applying every event once."""

from __future__ import annotations

import random
import threading
import time

import pytest
from interest.v1 import interest_pb2 as pb
from interest_client import InterestClient
from interest_server.ops.redis_launcher import free_port

from .conftest import (
    ServerProcess,
    catalog_items,
    check_all,
    connect,
    kill_server,
    make_events,
    start_server,
)

pytestmark = pytest.mark.timeout(240)  # two model loads plus the stream, on a busy machine

EVENTS = 5000
USERS = [f"crash-{n}" for n in range(4)]


def test_client_resumes_after_server_sigkill(redis_client, redis_server: str) -> None:  # noqa: ANN001
    port = free_port()  # fixed, so the restarted server is where the client reconnects
    servers: list[ServerProcess] = [start_server(redis_server, port=port)]
    rng = random.Random(17)
    events = make_events(rng, EVENTS, USERS, prefix="crash")
    kill_at = rng.randrange(EVENTS // 5, EVENTS * 4 // 5)
    kill_delay_s = rng.uniform(0.0, 0.03)  # so the kill can land mid-write, after an ack, ...
    acks: list[pb.EventAck] = []
    failure: list[BaseException] = []
    killed = threading.Event()
    # Model loading takes ~5-10 s (more on a busy machine): ~300 attempts with backoff capped at
    # 0.5 s (about 0.25 s each on average) outlast a restart of up to about a minute.
    client = InterestClient(f"127.0.0.1:{port}", timeout_s=20, max_attempts=300,
                            backoff_initial_s=0.05, backoff_max_s=0.5)
    try:
        client.upsert_items(catalog_items())

        def consume() -> None:
            try:
                for ack in client.stream_events(iter(events), batch_size=50,
                                                max_in_flight_batches=8):
                    acks.append(ack)
                    if len(acks) == kill_at:
                        def crash() -> None:
                            kill_server(servers[0])  # SIGKILL with batches in flight
                            killed.set()
                        threading.Timer(kill_delay_s, crash).start()
            except BaseException as exc:  # noqa: BLE001  (reported below)
                failure.append(exc)

        consumer = threading.Thread(target=consume, name="stream-consumer")
        consumer.start()
        assert killed.wait(60), f"the stream never reached {kill_at} acks: {failure}"
        down_at = time.monotonic()
        servers.append(start_server(redis_server, port=port))
        restart_s = time.monotonic() - down_at
        consumer.join(timeout=120)
        assert not consumer.is_alive(), "the client did not finish after the restart"
        assert not failure, failure
    finally:
        client.close()
        for s in servers:
            if s.proc.poll() is None:
                s.stop()

    assert [a.event_id for a in acks] == [e.event_id for e in events], "acks out of input order"
    statuses = {a.status for a in acks}
    assert statuses <= {pb.ACK_STATUS_APPLIED, pb.ACK_STATUS_DUPLICATE}, statuses
    duplicates = sum(a.status == pb.ACK_STATUS_DUPLICATE for a in acks)
    store = connect(redis_server)
    try:
        checked = check_all(store, events, USERS)
    finally:
        store.close()
    print(f"server SIGKILLed {kill_delay_s * 1000:.0f} ms after ack {kill_at}, back after "
          f"{restart_s:.1f} s; client resent the unacked batches: {duplicates} DUPLICATE "
          f"(landed before the crash, ack lost), "
          f"{EVENTS - duplicates} APPLIED; {checked} events checked, state equals the oracle")

