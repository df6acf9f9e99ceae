"""The one place that maps domain and Redis errors to gRPC status codes."""

from __future__ import annotations

import functools
import inspect
import logging
import uuid
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import grpc
import redis

from interest_server import errors
from interest_server.api.registration import Undecodable
from interest_server.ops import logs, metrics

log = logging.getLogger(__name__)

INTERNAL_MESSAGE = "internal error; quote request id {rid} when reporting it"

_CODES: list[tuple[type[BaseException], grpc.StatusCode]] = [
    (errors.InvalidArgument, grpc.StatusCode.INVALID_ARGUMENT),
    (errors.NotFound, grpc.StatusCode.NOT_FOUND),
    (errors.FailedPrecondition, grpc.StatusCode.FAILED_PRECONDITION),
    (errors.PermissionDenied, grpc.StatusCode.PERMISSION_DENIED),
    (errors.ResourceExhausted, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (errors.Unavailable, grpc.StatusCode.UNAVAILABLE),
    (errors.Aborted, grpc.StatusCode.ABORTED),
    (errors.Cancelled, grpc.StatusCode.CANCELLED),
]

F = TypeVar("F", bound=Callable[..., Any])


def status_for(exc: BaseException) -> tuple[grpc.StatusCode, str]:
    """The status code and caller-safe message for an exception."""
    for kind, code in _CODES:
        if isinstance(exc, kind):
            return code, str(exc)
    if isinstance(exc, redis.RedisError | redis.exceptions.RedisClusterException):
        metrics.redis_error(exc)
    if isinstance(exc, redis.exceptions.RedisClusterException):
        # redis-py's cluster client failing to reach or map the cluster (not a RedisError).
        return grpc.StatusCode.UNAVAILABLE, "the state store cluster is unreachable; retry later"
    if isinstance(exc, redis.exceptions.ClusterError):
        # CLUSTERDOWN / MASTERDOWN, matched by class: a cluster pipeline rewrites the message.
        return grpc.StatusCode.UNAVAILABLE, "the state store cluster is down; retry later"
    if isinstance(exc, redis.exceptions.TimeoutError):
        # Never echo redis' own message: it names the server address.
        return grpc.StatusCode.UNAVAILABLE, "the state store timed out; retry later"
    if isinstance(exc, redis.exceptions.ConnectionError | redis.exceptions.BusyLoadingError):
        return grpc.StatusCode.UNAVAILABLE, "the state store is unreachable; retry later"
    if isinstance(exc, redis.exceptions.ReadOnlyError | redis.exceptions.TryAgainError):
        return grpc.StatusCode.UNAVAILABLE, "the state store is failing over; retry later"
    if isinstance(exc, redis.exceptions.ResponseError):
        reply = str(exc)
        if reply.startswith("OOM"):
            return grpc.StatusCode.RESOURCE_EXHAUSTED, "the state store is out of memory"
        if reply.startswith(("MASTERDOWN", "LOADING", "CLUSTERDOWN")):
            return grpc.StatusCode.UNAVAILABLE, "the state store is not ready; retry later"
    rid = logs.request_id.get() or uuid.uuid4().hex[:16]
    log.error("request %s failed", rid, exc_info=exc)
    return grpc.StatusCode.INTERNAL, INTERNAL_MESSAGE.format(rid=rid)


def _abort(context: grpc.ServicerContext, exc: BaseException) -> None:
    if isinstance(exc, grpc.RpcError) and not context.is_active():
        # The request stream broke because the call is already over (the client cancelled, or
        # a message exceeded the size limit and the caller got RESOURCE_EXHAUSTED): not a
        # fault of ours, and nobody is left to answer.
        log.info("call ended while reading its request stream")
        context.abort(grpc.StatusCode.CANCELLED, "the call ended")
    code, message = status_for(exc)
    if code != grpc.StatusCode.INTERNAL:
        log.info("%s: %s", code.name, message)
    context.abort(code, message)


def rpc(method: F) -> F:
    """Wrap a servicer method (unary or streaming-response) so every exception becomes a status.

    The exception context.abort() raises to unwind passes through untouched.
    """
    if inspect.isgeneratorfunction(method):
        @functools.wraps(method)
        def stream_wrapper(self: Any, request: Any, context: grpc.ServicerContext) -> Any:
            try:
                yield from method(self, _checked(request), context)
            except Exception as exc:
                if _is_abort(exc, context):
                    raise
                _abort(context, exc)
        return stream_wrapper  # type: ignore[return-value]

    @functools.wraps(method)
    def unary_wrapper(self: Any, request: Any, context: grpc.ServicerContext) -> Any:
        try:
            return method(self, _checked(request), context)
        except Exception as exc:
            if _is_abort(exc, context):
                raise
            _abort(context, exc)
    return unary_wrapper  # type: ignore[return-value]


def _checked(request: Any) -> Any:
    """The request, or for a client stream an iterator, with undecodable messages refused."""
    if isinstance(request, Undecodable):
        raise errors.InvalidArgument(request.describe())
    if isinstance(request, Iterator):  # a client stream: check each message as it arrives
        return _checked_stream(request)
    return request


def _checked_stream(requests: Iterator[Any]) -> Iterator[Any]:
    for request in requests:
        if isinstance(request, Undecodable):
            raise errors.InvalidArgument(request.describe())
        yield request


def _is_abort(exc: BaseException, context: grpc.ServicerContext) -> bool:
    # context.abort() records the status, then raises a bare Exception to unwind the handler.
    code = context.code()
    return type(exc) is Exception and code is not None and code != grpc.StatusCode.OK
