"""Whether the caller of the current call still waits, so domain code never writes for nobody."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from contextvars import ContextVar

from interest_server.errors import Cancelled

_waiting: ContextVar[Callable[[], bool] | None] = ContextVar("caller_waiting", default=None)


@contextlib.contextmanager
def bound(is_waiting: Callable[[], bool]) -> Iterator[None]:
    """Within the block, check_waiting() asks `is_waiting` (e.g. grpc's context.is_active).

    A context variable, so the domain code stays free of gRPC and each RPC thread has its own.
    """
    token = _waiting.set(is_waiting)
    try:
        yield
    finally:
        _waiting.reset(token)


def current() -> Callable[[], bool] | None:
    """The check bound to this thread's call, if any (to hand to another thread)."""
    return _waiting.get()


def check_waiting() -> None:
    """Raise Cancelled if the caller was cancelled or its deadline passed (outside bound():
    never). Called right before a write, so a caller that gave up sees no late effect."""
    is_waiting = _waiting.get()
    if is_waiting is not None and not is_waiting():
        raise Cancelled("the call was cancelled or passed its deadline; nothing was written")
