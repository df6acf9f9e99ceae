"""The start-up gate: InterestService calls get UNAVAILABLE until the server is ready."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

import grpc

from interest_server.api.auth import refusal

log = logging.getLogger(__name__)

STARTING_MESSAGE = ("the server is starting (warming the model, loading the catalog); "
                    "retry shortly")
_GATED_PREFIX = "/interest.v1.InterestService/"


class StartupGate(grpc.ServerInterceptor):
    """Refuses InterestService calls with UNAVAILABLE until open() is called.

    The port is bound before the model is warm and the catalog loaded, so health checks get an
    answer (NOT_SERVING) during a long start instead of a refused connection. A call arriving
    then would rank against an empty index or wait behind the warm-up; UNAVAILABLE is the
    status clients retry with backoff. Health checking and reflection are never gated.
    """

    def __init__(self) -> None:
        self._open = threading.Event()

    def open(self) -> None:
        """Admit calls from now on."""
        self._open.set()

    @property
    def is_open(self) -> bool:
        """Whether calls are admitted."""
        return self._open.is_set()

    def intercept_service(self, continuation: Callable[[grpc.HandlerCallDetails], Any],
                          handler_call_details: grpc.HandlerCallDetails) -> Any:
        if self._open.is_set() or not handler_call_details.method.startswith(_GATED_PREFIX):
            return continuation(handler_call_details)
        log.info("%s: refused while starting", handler_call_details.method)
        return refusal(continuation(handler_call_details), grpc.StatusCode.UNAVAILABLE,
                        STARTING_MESSAGE)


__all__ = ["STARTING_MESSAGE", "StartupGate"]
