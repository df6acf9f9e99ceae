"""Graceful shutdown on SIGTERM: NOT_SERVING at once, in-flight unary calls finish, open streams
keep working through the grace period and then end with UNAVAILABLE, no acked event is lost, and
the process exits 0."""

from __future__ import annotations

import os
import queue
import signal
import threading
import time
from collections.abc import Iterator

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from interest.v1 import interest_pb2 as pb
from interest.v1 import interest_pb2_grpc
from interest_server.ops.redis_launcher import EmbeddedRedis

from .conftest import catalog_items, check_all, connect, event, server_log, start_server

GRACE_S = 5.0  # what `interest-server serve` gives in-flight calls on SIGTERM (cli._serve)
USER = "term"


def test_sigterm_drains_then_exits_zero(store: EmbeddedRedis) -> None:
    server = start_server(store.url, env={"INTEREST_REDIS_TIMEOUT_S": "10"})
    channel = grpc.insecure_channel(server.target)
    watch_channel = grpc.insecure_channel(server.target)
    outbox: queue.SimpleQueue[pb.EventBatch | None] = queue.SimpleQueue()

    def requests() -> Iterator[pb.EventBatch]:
        while (batch := outbox.get()) is not None:
            yield batch

    try:
        stub = interest_pb2_grpc.InterestServiceStub(channel)
        stub.UpsertItems(iter([pb.UpsertItemsRequest(items=catalog_items())]), timeout=60)
        watched: list[tuple[float, int]] = []
        watch = health_pb2_grpc.HealthStub(watch_channel).Watch(
            health_pb2.HealthCheckRequest(), timeout=60)

        def follow() -> None:
            try:
                for resp in watch:
                    watched.append((time.monotonic(), resp.status))
            except grpc.RpcError:
                pass
        threading.Thread(target=follow, daemon=True).start()

        g1 = [event(f"g1-{i}", USER, str(1 + i), ts=1 + i) for i in range(10)]
        g2 = [event(f"g2-{i}", USER, str(11 + i), ts=100 + i) for i in range(10)]
        unary = [event("u-0", USER, "25", ts=50)]
        stream = stub.StreamEvents(requests(), timeout=60)
        outbox.put(pb.EventBatch(batch_id="g1", events=g1))
        assert next(stream).applied == 10

        # Park a unary call in a frozen Redis, then SIGTERM the server.
        os.kill(store.pid, signal.SIGSTOP)
        try:
            in_flight = stub.IngestEvents.future(pb.EventBatch(events=unary), timeout=30)
            time.sleep(0.3)
            term_at = time.monotonic()
            server.proc.send_signal(signal.SIGTERM)
            # Health says NOT_SERVING at once (a watcher sees it; new calls are refused).
            deadline = term_at + 1.0
            while not any(s == health_pb2.HealthCheckResponse.NOT_SERVING for _, s in watched):
                assert time.monotonic() < deadline, f"no NOT_SERVING after SIGTERM: {watched}"
                time.sleep(0.01)
            not_serving_s = next(t for t, s in watched
                                 if s == health_pb2.HealthCheckResponse.NOT_SERVING) - term_at
            # The open stream still takes batches during the grace period.
            outbox.put(pb.EventBatch(batch_id="g2", events=g2))
            time.sleep(max(0.0, term_at + 1.0 - time.monotonic()))
        finally:
            os.kill(store.pid, signal.SIGCONT)
        unary_ack = in_flight.result(timeout=GRACE_S)
        unary_done_s = time.monotonic() - term_at
        assert unary_ack.acks[0].status == pb.ACK_STATUS_APPLIED
        assert next(stream).applied == 10

        # Then, at the end of the grace period, the open stream ends with UNAVAILABLE.
        try:
            next(stream)
            raise AssertionError("the stream got another message after the grace period")
        except grpc.RpcError as err:
            ended_s = time.monotonic() - term_at
            assert err.code() == grpc.StatusCode.UNAVAILABLE, err
        assert GRACE_S - 0.5 <= ended_s <= GRACE_S + 2.0, ended_s
        code = server.proc.wait(timeout=20)
        exit_s = time.monotonic() - term_at
        assert code == 0, f"exit code {code}; log:\n{server_log(server)}"
    finally:
        outbox.put(None)
        channel.close()
        watch_channel.close()
        if server.proc.poll() is None:
            server.proc.kill()
            server.proc.wait()

    client = connect(store.url)
    try:
        checked = check_all(client, g1 + unary + g2, [USER])
    finally:
        client.close()
    print(f"SIGTERM: NOT_SERVING after {not_serving_s * 1000:.0f} ms; in-flight unary call "
          f"finished OK after {unary_done_s:.2f} s; open stream acked a batch during the grace "
          f"period and ended UNAVAILABLE after {ended_s:.2f} s (grace {GRACE_S} s); exit code 0 "
          f"after {exit_s:.2f} s; {checked} acked events all stored")


def test_a_burst_of_signals_still_shuts_down_once(store: EmbeddedRedis) -> None:
    """SIGTERM and SIGINT many times in a row (a supervisor's TERM after a user's Ctrl-C, or
    `timeout` forwarding one after `kill`): the server stops gracefully and exits 0. A handler
    that set a threading.Event hung here for good once a signal landed inside the previous
    handler's Event.set() (stop_signals.py)."""
    server = start_server(store.url)
    try:
        for n in range(400):
            server.proc.send_signal(signal.SIGTERM if n % 2 else signal.SIGINT)
        code = server.proc.wait(timeout=30)
        assert code == 0, f"exit code {code}; log:\n{server_log(server)}"
    finally:
        if server.proc.poll() is None:
            server.proc.kill()
            server.proc.wait()
