"""Server factory: wires Redis, the model, the engine, health and reflection into a gRPC server."""

from __future__ import annotations

import gc
import logging
import threading
from collections.abc import Callable
from concurrent import futures
from dataclasses import dataclass, field

import grpc
import torch
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from interest.v1 import interest_pb2

from interest_server.api import auth, tls
from interest_server.api.registration import add_servicer
from interest_server.api.service import InterestService
from interest_server.api.startup import StartupGate
from interest_server.api.tenants import TenantResolver
from interest_server.config import Settings
from interest_server.engine.engine import Encoder, InterestEngine
from interest_server.engine.tenants import TenantEngines
from interest_server.engine.watch import WatchHub
from interest_server.errors import FailedPrecondition
from interest_server.model.concepts import ConceptPhrase
from interest_server.model.encoder import TextEncoder
from interest_server.ops import metrics, tracing
from interest_server.ops.redis_launcher import EmbeddedRedis, start_embedded
from interest_server.state.redis_conn import REDIS_ERRORS, connect_redis, ping, probe_client

log = logging.getLogger(__name__)

SERVICE_NAME = interest_pb2.DESCRIPTOR.services_by_name["InterestService"].full_name
HEALTH_PROBE_INTERVAL_S = 0.5
HEALTH_PROBE_TIMEOUT_S = 1.0
"""A health probe gives up after this (or redis_timeout_s if shorter), so a stalled Redis turns
health NOT_SERVING within interval + timeout = 1.5 s, whatever the timeout of real calls."""


@dataclass
class RunningServer:
    """A started server and what it owns; stop() releases all of it."""

    server: grpc.Server
    port: int
    engine: InterestEngine
    health: health.HealthServicer
    redis_url: str = field(repr=False)  # may carry a password
    embedded_redis: EmbeddedRedis | None = None
    watch: WatchHub | None = None
    metrics_http: metrics.MetricsEndpoint | None = None
    tenants: TenantEngines | None = None
    _stop: threading.Event = field(default_factory=threading.Event)
    _monitor: threading.Thread | None = None

    @property
    def target(self) -> str:
        """host:port a client on this machine can dial."""
        return f"127.0.0.1:{self.port}"

    def stop(self, grace_s: float = 5.0) -> None:
        """Graceful shutdown: NOT_SERVING, drain RPCs for grace_s, then release everything."""
        self._stop.set()
        self.health.enter_graceful_shutdown()
        if self.watch is not None:  # watch streams never end by themselves: end them now
            self.watch.shutdown()
        self.server.stop(grace_s).wait()
        if self.watch is not None:
            self.watch.stop()
        if self.metrics_http is not None:
            self.metrics_http.stop()
        if self.tenants is not None:
            self.tenants.stop()
        else:
            self.engine.stop()
        if self._monitor is not None:
            self._monitor.join(timeout=2)
        self.engine.redis.close()
        if self.embedded_redis is not None:
            self.embedded_redis.stop()
        gc.unfreeze()  # what this server held is ordinary garbage again

    def wait(self) -> None:
        """Block until the server terminates."""
        self.server.wait_for_termination()


def _set_health(servicer: health.HealthServicer, serving: bool,
                names: tuple[str, ...] = ("", SERVICE_NAME)) -> None:
    """Health of the process ("", a liveness check) and of the service (SERVICE_NAME, a
    readiness check). Both are NOT_SERVING until start-up ends and from shutdown on; only the
    service's follows Redis, so a long Redis outage makes replicas unready, never restarted."""
    status = (health_pb2.HealthCheckResponse.SERVING if serving
              else health_pb2.HealthCheckResponse.NOT_SERVING)
    for name in names:
        servicer.set(name, status)


def _monitor_redis(running: RunningServer) -> None:
    """The service NOT_SERVING while Redis does not answer, SERVING again as soon as it does
    (the process's own "" status stays SERVING: restarting would not bring Redis back)."""
    serving = True
    probe = probe_client(running.engine.redis, running.redis_url,
                         min(running.engine.settings.redis_timeout_s, HEALTH_PROBE_TIMEOUT_S))
    try:
        while not running._stop.wait(HEALTH_PROBE_INTERVAL_S):
            try:
                ping(probe)
                ok = True
            except REDIS_ERRORS:
                ok = False
            if ok != serving and not running._stop.is_set():
                log.warning("redis %s; health -> %s", "is back" if ok else "is unreachable",
                            "SERVING" if ok else "NOT_SERVING")
                _set_health(running.health, ok, names=(SERVICE_NAME,))
                serving = ok
    finally:
        probe.close()


def concept_extractor(settings: Settings, encoder: Encoder
                      ) -> Callable[[str], list[ConceptPhrase]] | None:
    """The description -> concepts step settings choose: the learned head, or None (the rules).

    A head trained on another encoder's token states cannot read this one's: that is a startup
    error naming the fix (train a head for this encoder, or choose the rules), never a silent
    switch to the rules.
    """
    if settings.concept_extractor == "rules":
        return None
    from interest_server.model.concept_extractor import ConceptExtractor, HeadMismatch

    try:
        extractor = ConceptExtractor(encoder, settings.concept_head_path or None)
    except HeadMismatch as exc:
        raise FailedPrecondition(f"{exc}; or start with --concept-extractor rules") from exc
    log.info("concept extractor %s", extractor.version)
    return extractor.extract


def create_server(settings: Settings, encoder: Encoder | None = None) -> RunningServer:
    """Build and start a server. Pass an already-loaded encoder to share one model between
    servers.

    The port is bound and answering before the model is warm and the catalog loaded, so a
    probe sees NOT_SERVING rather than a refused connection during a long start. Until both
    are done, health is NOT_SERVING for "" and for the service, and every InterestService call
    is answered UNAVAILABLE "the server is starting" (startup.py; clients retry UNAVAILABLE).
    The gate opens, then health turns SERVING: a caller that saw SERVING is always admitted.
    """
    embedded = None
    started: grpc.Server | None = None
    url = settings.resolved_redis_url()
    if not url:
        embedded = start_embedded(settings.data_dir, settings.redis_appendfsync)
        url = embedded.url
    try:
        client = connect_redis(url, settings.redis_timeout_s, settings.redis_cluster)
        ping(client)
        if settings.torch_threads > 0:
            torch.set_num_threads(settings.torch_threads)
        if encoder is None:
            encoder = TextEncoder(settings.model_dir, max_seq_length=settings.max_seq_length,
                                  batch_size=settings.encode_batch_size,
                                  runtime=settings.encoder_runtime)
        rewrite = concept_extractor(settings, encoder)
        if settings.concept_model_dir:
            from interest_server.model.rewriter import GenerativeRewriter

            rewrite = GenerativeRewriter(
                settings.concept_model_dir, fallback=rewrite,
                budget_ms=settings.concept_model_budget_ms,
                cache_size=settings.concept_model_cache_size).rewrite
        tenants = TenantEngines(settings, client, encoder, rewrite)
        engine = tenants.default

        gate = StartupGate()
        server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=settings.workers,
                                       thread_name_prefix="rpc"),
            maximum_concurrent_rpcs=settings.max_concurrent_rpcs,
            interceptors=[metrics.ObservabilityInterceptor(tracing.tracer(settings.tracing)),
                          gate, *auth.interceptors(settings)],
            options=[("grpc.max_receive_message_length", settings.max_message_bytes),
                     ("grpc.max_send_message_length", settings.max_message_bytes)],
        )
        hub = WatchHub(client)
        resolver = TenantResolver(auth.TokenTable(auth.load_tokens(settings)))
        add_servicer(InterestService(tenants, settings, hub, resolver), server)
        health_servicer = health.HealthServicer(
            experimental_non_blocking=True,
            experimental_thread_pool=futures.ThreadPoolExecutor(max_workers=2))
        health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
        _set_health(health_servicer, False)
        reflection.enable_server_reflection(
            (SERVICE_NAME, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
             reflection.SERVICE_NAME), server)
        port = tls.add_port(server, settings)
        if port == 0:
            raise RuntimeError(f"could not bind {settings.host}:{settings.port}")
        server.start()
        started = server

        if hasattr(encoder, "warm"):
            encoder.warm()
        tenants.start()
        hub.start()
        metrics.bind_engine(engine)
        metrics.bind_tenants(tenants)
        metrics_http = metrics.serve(settings)
    except BaseException:
        if started is not None:  # release the port: the caller gets the error, not a server
            started.stop(None)
        if embedded is not None:
            embedded.stop()
        raise
    running = RunningServer(server, port, engine, health_servicer, url, embedded, hub,
                            metrics_http, tenants)
    # What start-up built (the model, the catalog's index: ~411k tracked objects at 100k items)
    # lives as long as the server. A full cyclic-GC pass over it took 200-340 ms, a pause for
    # every call in flight; frozen, it is skipped (0.0 ms). stop() unfreezes.
    gc.collect()
    gc.freeze()
    gate.open()
    _set_health(health_servicer, True)
    running._monitor = threading.Thread(target=_monitor_redis, args=(running,),
                                        name="redis-health", daemon=True)
    running._monitor.start()
    log.info("serving %s on %s:%d (model %s, %d items)", SERVICE_NAME, settings.host, port,
             encoder.model_id, engine.catalog_size())
    return running
