"""Run the real interest server or a bare echo server for the benchmarks; prints `PORT n`."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Iterator
from concurrent import futures

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import grpc  # noqa: E402
from interest.v1 import interest_pb2 as pb  # noqa: E402
from interest.v1 import interest_pb2_grpc  # noqa: E402
from interest_server.api.registration import add_servicer  # noqa: E402
from interest_server.config import Settings  # noqa: E402


class EchoService(interest_pb2_grpc.InterestServiceServicer):
    """Same StreamEvents / IngestEvents signatures and messages, no work: acks every event."""

    @staticmethod
    def _ack(batch: pb.EventBatch) -> pb.EventBatchAck:
        ack = pb.EventBatchAck(batch_id=batch.batch_id, applied=len(batch.events))
        for ev in batch.events:
            ack.acks.add(event_id=ev.event_id, status=pb.ACK_STATUS_APPLIED, user_version=1)
        return ack

    def StreamEvents(self, request_iterator: Iterator[pb.EventBatch],  # noqa: N802
                     context: grpc.ServicerContext) -> Iterator[pb.EventBatchAck]:
        for batch in request_iterator:
            yield self._ack(batch)

    def IngestEvents(self, request: pb.EventBatch,  # noqa: N802
                     context: grpc.ServicerContext) -> pb.EventBatchAck:
        return self._ack(request)


def start_echo(settings: Settings) -> tuple[grpc.Server, int]:
    """A gRPC server built like app.create_server (same pool, limits, parsing), echo only."""
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=settings.workers, thread_name_prefix="rpc"),
        maximum_concurrent_rpcs=settings.max_concurrent_rpcs,
        options=[("grpc.max_receive_message_length", settings.max_message_bytes),
                 ("grpc.max_send_message_length", settings.max_message_bytes)])
    add_servicer(EchoService(), server)
    port = server.add_insecure_port(f"{settings.host}:0")
    server.start()
    return server, port


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("kind", choices=["real", "echo"])
    parser.add_argument("--redis-url", default="")
    parser.add_argument("--workers", type=int, default=Settings.workers)
    parser.add_argument("--encoder-runtime", default=Settings.encoder_runtime)
    parser.add_argument("--user-cache-size", type=int, default=Settings.user_cache_size)
    parser.add_argument("--ann-min-items", type=int, default=Settings.ann_min_items)
    parser.add_argument("--coalesce-events", type=int,
                        default=Settings.coalesce_events)
    parser.add_argument("--metrics-port", type=int, default=0)
    parser.add_argument("--event-log-maxlen", type=int, default=Settings.event_log_maxlen)
    parser.add_argument("--concept-extractor", default=Settings.concept_extractor)
    parser.add_argument("--interest-model-path", default=Settings.interest_model_path)
    parser.add_argument("--processes", type=int, default=1,
                        help="real server: `interest-server serve --processes N` (the shipped "
                        "supervisor, one port shared by N processes) instead of one in-process "
                        "server")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    settings = Settings(host="127.0.0.1", port=0, redis_url=args.redis_url,
                        workers=args.workers, log_level="WARNING",
                        encoder_runtime=args.encoder_runtime,
                        user_cache_size=args.user_cache_size,
                        ann_min_items=args.ann_min_items,
                        coalesce_events=args.coalesce_events,
                        metrics_port=args.metrics_port,
                        event_log_maxlen=args.event_log_maxlen,
                        concept_extractor=args.concept_extractor,
                        interest_model_path=args.interest_model_path)
    if args.kind == "real" and args.processes != 1:
        return _supervised(settings, args.processes)
    if args.kind == "echo":
        echo, port = start_echo(settings)
        stop = lambda: echo.stop(1).wait()  # noqa: E731
    else:
        if not args.redis_url:
            parser.error("the real server needs --redis-url")
        from interest_server.api.app import create_server  # torch: only the real server pays

        running = create_server(settings)  # returns once the model is warm, catalog loaded
        port, stop = running.port, lambda: running.stop(1.0)
    print(f"PORT {port}", flush=True)
    sys.stdin.read()  # the parent closes our stdin (or dies) to stop us
    stop()
    return 0


def _supervised(settings: Settings, processes: int) -> int:
    """`interest-server serve --processes N` as a child, given these settings the way the
    supervisor gives its own children theirs (config.to_env); PORT once every process serves."""
    import re
    import signal
    import subprocess
    import threading

    from interest_server import config

    proc = subprocess.Popen(
        [sys.executable, "-m", "interest_server.cli", "serve"],
        env={**os.environ, **config.to_env(settings.replace(processes=processes))},
        stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    for line in proc.stdout:
        found = re.search(r"listening on .*:(\d+) \(", line)
        if found:
            print(f"PORT {found.group(1)}", flush=True)
            break
    else:
        return proc.wait()
    # Keep reading what the server prints (its children's relayed stdout): a full pipe would
    # block it.
    threading.Thread(target=proc.stdout.read, daemon=True).start()
    sys.stdin.read()
    proc.send_signal(signal.SIGTERM)
    return proc.wait()


if __name__ == "__main__":
    raise SystemExit(main())
