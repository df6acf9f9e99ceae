"""The one mapping from domain and Redis errors to gRPC status codes, and the rpc wrapper."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator

import grpc
import pytest
import redis
from interest_server import errors
from interest_server.api.grpc_errors import INTERNAL_MESSAGE, rpc, status_for

SECRET = "Error 111 connecting to 10.1.2.3:6379. Connection refused."
C = grpc.StatusCode


@pytest.mark.parametrize(("exc", "code"), [
    (errors.InvalidArgument("k is 5000; the limit is 1000"), C.INVALID_ARGUMENT),
    (errors.NotFound("item m9 not found"), C.NOT_FOUND),
    (errors.FailedPrecondition("catalog is empty"), C.FAILED_PRECONDITION),
    (errors.ResourceExhausted("too many streams"), C.RESOURCE_EXHAUSTED),
    (errors.Unavailable("state store down"), C.UNAVAILABLE),
    (errors.Aborted("writers kept conflicting"), C.ABORTED),
])
def test_domain_errors_map_to_their_code_with_their_message(exc: Exception,
                                                             code: grpc.StatusCode) -> None:
    assert status_for(exc) == (code, str(exc))


@pytest.mark.parametrize(("exc", "code", "message"), [
    (redis.exceptions.TimeoutError(SECRET), C.UNAVAILABLE,
     "the state store timed out; retry later"),
    (redis.exceptions.ConnectionError(SECRET), C.UNAVAILABLE,
     "the state store is unreachable; retry later"),
    (redis.exceptions.BusyLoadingError(SECRET), C.UNAVAILABLE,
     "the state store is unreachable; retry later"),
    (redis.exceptions.AuthenticationError(SECRET), C.UNAVAILABLE,
     "the state store is unreachable; retry later"),
    (redis.exceptions.ResponseError("OOM command not allowed when used memory > 'maxmemory'."),
     C.RESOURCE_EXHAUSTED, "the state store is out of memory"),
    # A cluster pipeline rewrites the reply ("Command # 1 (...) of pipeline caused error: ..."),
    # so CLUSTERDOWN is only recognisable by its class (this was INTERNAL).
    (redis.exceptions.ClusterDownError(
        "Command # 1 (HMGET u:{x}:state v) of pipeline caused error: The cluster is down"),
     C.UNAVAILABLE, "the state store cluster is down; retry later"),
    (redis.exceptions.MasterDownError(SECRET), C.UNAVAILABLE,
     "the state store cluster is down; retry later"),
    (redis.exceptions.RedisClusterException(SECRET), C.UNAVAILABLE,
     "the state store cluster is unreachable; retry later"),
])
def test_redis_errors_do_not_echo_their_text(exc: Exception, code: grpc.StatusCode,
                                             message: str) -> None:
    got_code, got_message = status_for(exc)
    assert got_code == code
    assert got_message == message
    assert "10.1.2.3" not in got_message and "6379" not in got_message


@pytest.mark.parametrize("exc", [
    RuntimeError("password=hunter2 at 10.1.2.3:6379"),
    KeyError("hunter2"),
    redis.exceptions.ResponseError("WRONGTYPE hunter2"),
    errors.InterestError("hunter2"),  # the base class is not a status of its own
])
def test_unexpected_errors_are_internal_with_a_request_id(
        exc: Exception, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, logger="interest_server.api.grpc_errors")
    code, message = status_for(exc)
    assert code == C.INTERNAL
    assert "hunter2" not in message
    match = re.fullmatch(INTERNAL_MESSAGE.format(rid="([0-9a-f]{16})"), message)
    assert match, message
    rid = match.group(1)
    records = [r for r in caplog.records if rid in r.getMessage()]
    assert len(records) == 1
    assert records[0].levelno == logging.ERROR
    assert records[0].exc_info is not None and records[0].exc_info[1] is exc
    assert "hunter2" in caplog.text  # the detail stays server-side


def test_request_ids_differ() -> None:
    first = status_for(RuntimeError("x"))[1]
    second = status_for(RuntimeError("x"))[1]
    assert first != second


class FakeContext:
    """Records abort() like grpc does: the status is set, then a bare Exception unwinds."""

    def __init__(self) -> None:
        self._code: grpc.StatusCode | None = None
        self.aborts: list[tuple[grpc.StatusCode, str]] = []

    def code(self) -> grpc.StatusCode | None:
        return self._code

    def abort(self, code: grpc.StatusCode, details: str) -> None:
        self._code = code
        self.aborts.append((code, details))
        raise Exception()


class Servicer:
    @rpc
    def Unary(self, request: object, context: FakeContext) -> str:
        if request == "ok":
            return "reply"
        if request == "abort":
            context.abort(C.PERMISSION_DENIED, "no")
        if request == "redis":
            raise redis.exceptions.ConnectionError(SECRET)
        raise errors.NotFound("no such user")

    @rpc
    def Stream(self, request: object, context: FakeContext) -> Iterator[int]:
        yield 1
        yield 2
        if request == "boom":
            raise RuntimeError(SECRET)


def test_rpc_wrapper_unary() -> None:
    s = Servicer()
    assert s.Unary.__name__ == "Unary"
    ctx = FakeContext()
    assert s.Unary("ok", ctx) == "reply"
    assert ctx.aborts == []
    for request, expected in [("missing", (C.NOT_FOUND, "no such user")),
                              ("abort", (C.PERMISSION_DENIED, "no")),
                              ("redis", (C.UNAVAILABLE,
                                         "the state store is unreachable; retry later"))]:
        ctx = FakeContext()
        with pytest.raises(Exception):  # noqa: B017 - grpc unwinds with a bare Exception
            s.Unary(request, ctx)
        assert ctx.aborts == [expected]  # the handler's own abort is not mapped again


def test_rpc_wrapper_stream(caplog: pytest.LogCaptureFixture) -> None:
    s = Servicer()
    ctx = FakeContext()
    assert list(s.Stream("ok", ctx)) == [1, 2]
    ctx = FakeContext()
    got = []
    with pytest.raises(Exception):  # noqa: B017
        for x in s.Stream("boom", ctx):
            got.append(x)
    assert got == [1, 2]
    assert len(ctx.aborts) == 1
    code, message = ctx.aborts[0]
    assert code == C.INTERNAL and "10.1.2.3" not in message and "request id" in message
