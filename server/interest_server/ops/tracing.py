"""Optional OpenTelemetry tracing: one server span per RPC, only if opentelemetry is installed.

No hard dependency: without `opentelemetry-api` the `tracing` setting logs a warning and does
nothing. With the API alone, spans go to whatever tracer provider the process has (e.g. the one
`opentelemetry-instrument interest-server serve` configures from OTEL_* variables). With
`opentelemetry-sdk` and `opentelemetry-exporter-otlp` installed and no provider configured yet,
this module installs one that exports over OTLP (endpoint from OTEL_EXPORTER_OTLP_ENDPOINT).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable
from typing import Any

import grpc

log = logging.getLogger(__name__)

try:  # guarded: tracing is an option, not a dependency
    from opentelemetry import context as otel_context
    from opentelemetry import propagate, trace
    from opentelemetry.trace import SpanKind, Status, StatusCode
except ImportError:  # pragma: no cover - exercised where opentelemetry is absent
    trace = None  # type: ignore[assignment]


def available() -> bool:
    """Whether opentelemetry-api can be imported."""
    return trace is not None


class Span:
    """An RPC's span, current on this thread until end()."""

    def __init__(self, span: Any, token: Any) -> None:
        self._span = span
        self._token = token

    def end(self, code: grpc.StatusCode) -> None:
        """Record the status code and close the span."""
        self._span.set_attribute("rpc.grpc.status_code", code.value[0])
        if code != grpc.StatusCode.OK:
            self._span.set_status(Status(StatusCode.ERROR, code.name))
        self._span.end()
        with contextlib.suppress(ValueError, RuntimeError):  # ended on another context
            otel_context.detach(self._token)


class Tracer:
    """Starts a server span per RPC, continuing the caller's trace (W3C traceparent)."""

    def __init__(self) -> None:
        _install_sdk_if_possible()
        self._tracer = trace.get_tracer("interest_server")

    def start(self, method: str, metadata: Iterable[tuple[str, Any]] | None) -> Span:
        """Open and activate the span of one call."""
        carrier = {k: v for k, v in metadata or () if isinstance(v, str)}
        parent = propagate.extract(carrier)
        service, _, name = method.lstrip("/").partition("/")
        span = self._tracer.start_span(
            method.lstrip("/"), context=parent, kind=SpanKind.SERVER,
            attributes={"rpc.system": "grpc", "rpc.service": service, "rpc.method": name})
        token = otel_context.attach(trace.set_span_in_context(span, parent))
        return Span(span, token)


def _install_sdk_if_possible() -> None:
    # Only when nothing configured a provider: never override the operator's setup.
    if type(trace.get_tracer_provider()).__name__ != "ProxyTracerProvider":
        return
    try:
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError:
        log.info("tracing: no OTLP exporter installed; spans go to the global tracer provider")
        return
    provider = TracerProvider(resource=Resource.create({"service.name": "interest-server"}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    log.info("tracing: exporting spans over OTLP")


def tracer(enabled: bool) -> Tracer | None:
    """A Tracer when tracing is on and opentelemetry is installed, else None."""
    if not enabled:
        return None
    if not available():
        log.warning("tracing is on but opentelemetry-api is not installed; no spans")
        return None
    return Tracer()
