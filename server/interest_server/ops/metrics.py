"""Prometheus metrics, and the interceptor that times every RPC and gives it a request id.

The metrics live in prometheus_client's default registry (one server per process in production;
tests that run several servers in one process read deltas). The HTTP endpoint is started only
when `metrics_port` is set.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import grpc
import redis
from prometheus_client import REGISTRY, Counter, Gauge, Histogram, Info, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from interest_server.events import EventResult
from interest_server.ops import logs, tracing

if TYPE_CHECKING:
    from interest_server.config import Settings


class ServedEngine(Protocol):
    """What the metrics read of an engine (engine.InterestEngine), typed here so that this
    module imports nothing above it."""

    encoder: Any
    model: Any

    def catalog_size(self) -> int: ...


class _CacheCounts(Protocol):
    hits: int
    misses: int

    def __len__(self) -> int: ...


class ServedTenants(Protocol):
    """What the metrics read of this process's tenants (engine.tenants.TenantEngines)."""

    state_cache: _CacheCounts

    def by_tenant(self) -> Mapping[str, ServedEngine]: ...

log = logging.getLogger(__name__)

EVENTS = Counter("interest_events", "Events acknowledged, by outcome and reject reason",
                 ["outcome", "reason"])
RPC_DURATION = Histogram(
    "interest_rpc_duration_seconds", "Time from the call's start to its status, per method "
    "and gRPC status code (streams: the whole stream)", ["service", "method", "code"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
             10.0, 30.0, 60.0, 300.0))
REDIS_ERRORS = Counter("interest_redis_errors", "Redis errors, by kind (each one that failed "
                       "a call, a change notification or the watch subscriber)", ["kind"])
STREAMS_IN_FLIGHT = Gauge("interest_streams_in_flight", "Open streaming calls, per method",
                          ["service", "method"])
INDEX_ITEMS = Gauge("interest_index_items", "Items in this process's item index")
MODEL = Info("interest_model", "The text encoder and the interest model this server runs")
STREAM_WRITE_MESSAGES = Histogram(
    "interest_stream_write_messages", "StreamEvents messages written together in one engine "
    "call (those that had already arrived)", buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256))
WRITE_CALLS = Histogram(
    "interest_event_write_calls", "Ingest calls (a StreamEvents write or an IngestEvents call) "
    "written together in one event write (group commit)", buckets=(1, 2, 4, 8, 16, 32, 64))
WATCH_PUSHES = Counter("interest_watch_pushes", "Lists pushed on WatchRecommendations streams")
WATCH_NOTIFICATIONS = Counter("interest_watch_notifications",
                              "User-change messages the watch subscriber received")
MODEL_SWITCHES = Counter(
    "interest_model_switches", "Interest model switches of a tenant in this process: a "
    "published model installed, or the configured one again after an unpublish", ["tenant"])
MODEL_LOAD_FAILURES = Counter(
    "interest_model_load_failures", "Published interest models this process refused, still "
    "serving the one it had, by reason: load (not a safe sequence-model checkpoint), encoder "
    "(trained on another text model), version (the blob is not the version published), install "
    "(computing the item matrix failed)", ["tenant", "reason"])
CONCEPT_MODEL_CALLS = Counter(
    "interest_concept_model_calls", "Descriptions given to the LLM step (concept_model_dir), by "
    "outcome: json (its answer used), invalid_fallback or timeout_fallback (the fallback "
    "extractor's concepts used instead), cache_hit (no generation)", ["outcome"])


class _TenantCollector:
    """Tenants and the user-state cache of the bound server, read at scrape time (the cache
    counts its own lookups, so the write path pays no metric call)."""

    def __init__(self) -> None:
        self.tenants: Callable[[], ServedTenants | None] = lambda: None
        self.registered = False

    def collect(self) -> Iterator[Any]:
        tenants = self.tenants()
        if tenants is None:
            return
        engines = tenants.by_tenant()
        yield GaugeMetricFamily("interest_tenants", "Tenants with an engine in this process",
                                value=len(engines))
        items = GaugeMetricFamily("interest_tenant_index_items",
                                  "Items in this process's item index of each tenant",
                                  labels=["tenant"])
        for name, engine in engines.items():
            items.add_metric([name], engine.catalog_size())
        yield items
        models = GaugeMetricFamily("interest_tenant_model", "The interest model each tenant's "
                                   "engine in this process serves now (value 1)",
                                   labels=["tenant", "version"])
        for name, engine in engines.items():
            models.add_metric([name, str(getattr(engine.model, "version", ""))], 1)
        yield models
        cache = tenants.state_cache
        yield GaugeMetricFamily("interest_user_state_cache_entries",
                                "Users whose last written state this process remembers",
                                value=len(cache))
        lookups = CounterMetricFamily(
            "interest_user_state_cache_lookups", "Event writes that found the user's state "
            "cached (hit: no read first) or not (miss)", labels=["result"])
        lookups.add_metric(["hit"], cache.hits)
        lookups.add_metric(["miss"], cache.misses)
        yield lookups


_TENANTS = _TenantCollector()
_BIND_LOCK = threading.Lock()
"""Registered by the first bind_tenants(), not at import: a process that only imports this
module (tools, tests of other parts) exports no tenant series."""


def count_events(results: Sequence[EventResult]) -> None:
    """Count acknowledged events by outcome and reject reason."""
    # One labels() look-up per distinct outcome, not per event (this runs on every batch).
    for (outcome, reason), n in collections.Counter((r.outcome, r.reason) for r in results
                                                    ).items():
        EVENTS.labels(outcome.name.lower(), reason.name.lower() if reason is not None else ""
                      ).inc(n)


def redis_error(exc: BaseException) -> None:
    """Count one Redis error (called where grpc_errors maps it, and by the watch machinery)."""
    if isinstance(exc, redis.exceptions.TimeoutError):
        kind = "timeout"
    elif isinstance(exc, redis.exceptions.ConnectionError):
        kind = "connection"
    elif isinstance(exc, redis.exceptions.ReadOnlyError | redis.exceptions.TryAgainError):
        kind = "failover"
    elif isinstance(exc, redis.exceptions.BusyLoadingError):
        kind = "loading"
    elif isinstance(exc, redis.exceptions.NoPermissionError):
        kind = "permission"
    elif isinstance(exc, redis.exceptions.ClusterError | redis.exceptions.RedisClusterException):
        kind = "cluster"
    elif isinstance(exc, redis.exceptions.ResponseError):
        kind = "response"
    else:
        kind = "other"
    REDIS_ERRORS.labels(kind).inc()


def bind_engine(engine: ServedEngine) -> None:
    """Report this engine's index size and model ids."""
    ref = weakref.ref(engine)

    def items() -> float:
        current = ref()
        return float(current.catalog_size()) if current is not None else 0.0

    INDEX_ITEMS.set_function(items)
    MODEL.info({"encoder": engine.encoder.model_id,
                "interest_model": str(getattr(engine.model, "version", ""))})


def bind_tenants(tenants: ServedTenants) -> None:
    """Report this process's tenants and user-state cache (the last bound server's)."""
    with _BIND_LOCK:
        if not _TENANTS.registered:
            REGISTRY.register(_TENANTS)
            _TENANTS.registered = True
    ref = weakref.ref(tenants)
    _TENANTS.tenants = ref


class MetricsEndpoint:
    """The /metrics HTTP server."""

    def __init__(self, host: str, port: int) -> None:
        self._server, self._thread = start_http_server(port, addr=host)
        self.port = self._server.server_port

    def stop(self) -> None:
        """Close the listening socket."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=2)


def serve(settings: Settings) -> MetricsEndpoint | None:
    """Start the endpoint on settings.metrics_host:settings.metrics_port (0: off). Its own
    host, loopback by default: a scraper may need it open where the gRPC port is not."""
    if not settings.metrics_port:
        return None
    endpoint = MetricsEndpoint(settings.metrics_host, settings.metrics_port)
    log.info("prometheus metrics on http://%s:%d/metrics", settings.metrics_host, endpoint.port)
    return endpoint


@dataclass
class _Call:
    service: str
    method: str
    streaming: bool
    start: float
    span: tracing.Span | None
    saved: tuple[Any, Any]


def _final_code(context: grpc.ServicerContext, raised: bool) -> grpc.StatusCode:
    code = context.code()
    if code is not None:
        return code
    if raised:
        return grpc.StatusCode.UNKNOWN  # grpc turns an unhandled exception into UNKNOWN
    return grpc.StatusCode.OK if context.is_active() else grpc.StatusCode.CANCELLED


class ObservabilityInterceptor(grpc.ServerInterceptor):
    """Per call: a request id in the logging context (the caller's `x-request-id` if plain, else
    random), a latency observation per method and status code, the in-flight stream gauge, and
    an OpenTelemetry span when tracing is on. Install it first, so it sees auth refusals too.
    Calls refused by max_concurrent_rpcs never reach an interceptor and are not counted."""

    def __init__(self, tracer: tracing.Tracer | None = None) -> None:
        self._tracer = tracer

    def intercept_service(self, continuation: Callable[[grpc.HandlerCallDetails], Any],
                          handler_call_details: grpc.HandlerCallDetails) -> Any:
        handler = continuation(handler_call_details)
        if handler is None:
            return None
        full = handler_call_details.method
        metadata = handler_call_details.invocation_metadata
        if handler.response_streaming:
            attr = "stream_stream" if handler.request_streaming else "unary_stream"
            wrapped: Any = self._wrap_stream(getattr(handler, attr), full, metadata)
        else:
            attr = "stream_unary" if handler.request_streaming else "unary_unary"
            wrapped = self._wrap_unary(getattr(handler, attr), full, metadata,
                                       handler.request_streaming)
        return handler._replace(**{attr: wrapped})

    def _begin(self, full: str, metadata: Iterable[tuple[str, Any]] | None,
               streaming: bool) -> _Call:
        service, _, method = full.lstrip("/").rpartition("/")
        incoming = next((v for k, v in metadata or () if k == "x-request-id"
                         and isinstance(v, str)), None)
        saved = (logs.request_id.get(), logs.method.get())
        logs.request_id.set(logs.new_request_id(incoming))
        logs.method.set(full)
        if streaming:
            STREAMS_IN_FLIGHT.labels(service, method).inc()
        span = self._tracer.start(full, metadata) if self._tracer is not None else None
        return _Call(service, method, streaming, time.perf_counter(), span, saved)

    def _end(self, call: _Call, code: grpc.StatusCode) -> None:
        elapsed = time.perf_counter() - call.start
        RPC_DURATION.labels(call.service, call.method, code.name).observe(elapsed)
        if call.streaming:
            STREAMS_IN_FLIGHT.labels(call.service, call.method).dec()
        if call.span is not None:
            call.span.end(code)
        log.debug("%s/%s %s in %.1f ms", call.service, call.method, code.name, elapsed * 1e3)
        logs.request_id.set(call.saved[0])
        logs.method.set(call.saved[1])

    def _wrap_unary(self, behavior: Callable[..., Any], full: str, metadata: Any,
                    request_streaming: bool) -> Callable[..., Any]:
        def unary(request: Any, context: grpc.ServicerContext) -> Any:
            call = self._begin(full, metadata, request_streaming)
            raised = False
            try:
                return behavior(request, context)
            except BaseException:
                raised = True
                raise
            finally:
                self._end(call, _final_code(context, raised))
        return unary

    def _wrap_stream(self, behavior: Callable[..., Any], full: str,
                     metadata: Any) -> Callable[..., Any]:
        def stream(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
            call = self._begin(full, metadata, True)
            code: grpc.StatusCode | None = None
            try:
                yield from behavior(request, context)
            except GeneratorExit:  # the transport stopped reading: the call is over
                code = grpc.StatusCode.CANCELLED
                raise
            except BaseException:
                code = _final_code(context, True)
                raise
            finally:
                self._end(call, code or _final_code(context, False))
        return stream
