"""Read a client stream ahead on its own thread, so a handler can take every message that has
already arrived in one go (StreamEvents writes them to Redis together) instead of one per turn.

Nothing waits for more messages to arrive: a lone message is taken at once, so coalescing only
happens when the client has several in flight (a window of unacknowledged batches). The buffer
is bounded by the messages' total weight (events), so when the handler falls behind the reader
blocks and HTTP/2 flow control pushes back on the client as before.
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")

_WAIT_POLL_S = 0.1
"""How often a reader blocked on a full buffer checks whether the handler has gone."""


@dataclass
class Taken(Generic[T]):
    """What one take() got: messages in arrival order, then possibly the stream's end."""

    messages: list[T] = field(default_factory=list)
    ended: bool = False
    error: BaseException | None = None
    """Raised reading or checking the message after the last one taken; ended is then set."""


class StreamReader(Generic[T]):
    """Pulls `requests` on a daemon thread into a buffer holding at most `capacity` weight
    (one message more than that is let in only into an empty buffer, so any message passes).

    Use as a context manager: leaving it tells the reader to stop (the stream itself ends when
    the RPC does, which unblocks a reader waiting on the network).
    """

    def __init__(self, requests: Iterator[T], weight: Callable[[T], int], capacity: int,
                 name: str = "stream-reader") -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self._requests = requests
        self._weight = weight
        self._capacity = capacity
        self._buffer: collections.deque[tuple[T, int]] = collections.deque()
        self._held = 0  # total weight in the buffer
        self._end: tuple[BaseException | None] | None = None  # set once the stream has ended
        self._closed = False
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._pump, name=name, daemon=True)

    def __enter__(self) -> StreamReader[T]:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def _pump(self) -> None:
        error: BaseException | None = None
        try:
            for message in self._requests:
                w = self._weight(message)
                with self._cond:
                    while self._buffer and self._held + w > self._capacity and not self._closed:
                        self._cond.wait(_WAIT_POLL_S)
                    if self._closed:
                        return
                    self._buffer.append((message, w))
                    self._held += w
                    self._cond.notify_all()
        except BaseException as exc:  # handed to the handler, which raises it in order
            error = exc
        with self._cond:
            if self._end is None:  # (a refused message may have ended it already)
                self._end = (error,)
            self._cond.notify_all()

    def take(self, budget: int,
             check: Callable[[T], BaseException | None] | None = None) -> Taken[T]:
        """Block for the next message, then also take those already buffered, up to `budget`
        total weight (the first message is always taken, whatever its weight).

        `check` vets each message before it joins: a message it refuses is not taken, and its
        error is returned (with `ended`) after the good ones before it, so the caller can answer
        those first. After the end, take() returns an empty, ended Taken.
        """
        taken = Taken[T]()
        used = 0
        with self._cond:
            while not self._buffer and self._end is None:
                self._cond.wait()
            while self._buffer:
                message, w = self._buffer[0]
                if taken.messages and used + w > budget:
                    break
                self._buffer.popleft()
                self._held -= w
                self._cond.notify_all()
                error = check(message) if check is not None else None
                if error is not None:  # nothing after a refused message is taken
                    self._end = (error,)
                    self._closed = True
                    self._buffer.clear()
                    break
                taken.messages.append(message)
                used += w
            if not self._buffer and self._end is not None:
                taken.ended = True
                taken.error = self._end[0]
                self._end = (None,)  # the error is reported once
        return taken
