"""Request ids in JSON logs, the observability interceptor, and optional OpenTelemetry spans."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from concurrent import futures

import grpc
import pytest
from interest_server.ops import logs, metrics, tracing

SERVICE = "test.v1.Echo"


def _json_handler(stream: io.StringIO) -> logging.Handler:
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.JsonFormatter())
    return handler


def test_json_lines_carry_the_request_id() -> None:
    stream = io.StringIO()
    logger = logging.getLogger("test.json")
    logger.addHandler(_json_handler(stream))
    logger.propagate = False
    try:
        logger.warning("outside a call")
        token = logs.request_id.set("abc123")
        method = logs.method.set("/x.Y/Z")
        try:
            try:
                raise RuntimeError("boom")
            except RuntimeError:
                logger.exception("inside a call: %s", "details")
        finally:
            logs.request_id.reset(token)
            logs.method.reset(method)
    finally:
        logger.handlers.clear()
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert first["message"] == "outside a call" and "request_id" not in first
    assert first["level"] == "WARNING" and first["logger"] == "test.json"
    assert second["request_id"] == "abc123" and second["method"] == "/x.Y/Z"
    assert second["message"] == "inside a call: details"
    assert "RuntimeError: boom" in second["exc"]


def test_incoming_request_ids_are_kept_only_when_plain() -> None:
    assert logs.new_request_id("req-0042:a.b_c") == "req-0042:a.b_c"
    for bad in ("two words", "a\nb", '{"x":1}', "z" * 65, "", None):
        rid = logs.new_request_id(bad)
        assert len(rid) == 16 and int(rid, 16) >= 0
    assert logs.new_request_id() != logs.new_request_id()


def test_configure_switches_format_and_refuses_unknown_ones() -> None:
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    try:
        logs.configure("DEBUG", "json")
        assert isinstance(root.handlers[0].formatter, logs.JsonFormatter)
        assert root.level == logging.DEBUG
        logs.configure("INFO", "text")
        assert not isinstance(root.handlers[0].formatter, logs.JsonFormatter)
        with pytest.raises(ValueError, match="log_format"):
            logs.configure("INFO", "xml")
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])


@pytest.fixture
def echo_server() -> Iterator[tuple[grpc.Channel, list[dict]]]:
    """A tiny server (no model, no Redis) behind ObservabilityInterceptor; its handlers log,
    and the records come back as JSON objects."""
    seen: list[dict] = []
    formatter = logs.JsonFormatter()

    class Capture(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(json.loads(formatter.format(record)))

    log = logging.getLogger("test.echo")
    log.addHandler(Capture())
    log.setLevel(logging.INFO)

    def unary(req: bytes, context: grpc.ServicerContext) -> bytes:
        log.info("unary %s", req.decode())
        if req == b"fail":
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, "no")
        return req

    def stream(req: bytes, context: grpc.ServicerContext) -> Iterator[bytes]:
        for i in range(3):
            log.info("stream %d", i)
            yield bytes([i])

    handlers = {"Unary": grpc.unary_unary_rpc_method_handler(unary),
                "Stream": grpc.unary_stream_rpc_method_handler(stream)}
    server = grpc.server(futures.ThreadPoolExecutor(2),
                         interceptors=[metrics.ObservabilityInterceptor()])
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            yield channel, seen
    finally:
        server.stop(0)
        log.handlers.clear()


def _count(method: str, code: str) -> float:
    for m in metrics.RPC_DURATION.collect():
        for s in m.samples:
            if s.name.endswith("_count") and s.labels == {"service": SERVICE, "method": method,
                                                         "code": code}:
                return s.value
    return 0.0


def test_each_call_has_its_request_id_and_is_timed(
        echo_server: tuple[grpc.Channel, list[dict]]) -> None:
    channel, seen = echo_server
    unary = channel.unary_unary(f"/{SERVICE}/Unary")
    stream = channel.unary_stream(f"/{SERVICE}/Stream")
    ok, failed, streamed = (_count("Unary", "OK"), _count("Unary", "FAILED_PRECONDITION"),
                            _count("Stream", "OK"))
    assert unary(b"a", metadata=(("x-request-id", "client-7"),), timeout=5) == b"a"
    assert unary(b"b", timeout=5) == b"b"
    with pytest.raises(grpc.RpcError):
        unary(b"fail", timeout=5)
    assert list(stream(b"", timeout=5)) == [b"\x00", b"\x01", b"\x02"]
    by_message = {r["message"]: r for r in seen}
    assert by_message["unary a"]["request_id"] == "client-7"
    assert by_message["unary a"]["method"] == f"/{SERVICE}/Unary"
    assert len(by_message["unary b"]["request_id"]) == 16
    stream_ids = {by_message[f"stream {i}"]["request_id"] for i in range(3)}
    assert len(stream_ids) == 1 and stream_ids != {by_message["unary b"]["request_id"]}
    assert _count("Unary", "OK") == ok + 2
    assert _count("Unary", "FAILED_PRECONDITION") == failed + 1
    assert _count("Stream", "OK") == streamed + 1
    assert logs.request_id.get() is None  # nothing leaks into this thread


def test_tracing_is_off_or_absent_without_harm() -> None:
    assert tracing.tracer(False) is None
    if not tracing.available():
        assert tracing.tracer(True) is None


def _memory_tracer() -> tuple[tracing.Tracer, object]:
    pytest.importorskip("opentelemetry.sdk")
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    return tracing.Tracer(), exporter


def test_a_span_per_call_when_opentelemetry_is_installed() -> None:
    tracer, exporter = _memory_tracer()
    server = grpc.server(futures.ThreadPoolExecutor(2),
                         interceptors=[metrics.ObservabilityInterceptor(tracer)])
    handlers = {"Unary": grpc.unary_unary_rpc_method_handler(lambda req, ctx: req)}
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            channel.unary_unary(f"/{SERVICE}/Unary")(b"x", metadata=(("traceparent", parent),),
                                                     timeout=5)
    finally:
        server.stop(0)
    (span,) = exporter.get_finished_spans()  # type: ignore[attr-defined]
    assert span.name == f"{SERVICE}/Unary"
    assert span.attributes["rpc.method"] == "Unary"
    assert span.attributes["rpc.grpc.status_code"] == 0
    assert format(span.context.trace_id, "032x") == "0af7651916cd43dd8448eb211c80319c"
