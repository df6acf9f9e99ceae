"""Group commit for event writes: calls that arrive while a write is in flight are written
together by the next one, so many small concurrent calls (IngestEvents of one event from many
request threads, several streams) share Redis round trips instead of queueing for the GIL and
the connection pool one by one.

Nothing waits for company: a call that finds no write in flight writes at once. The calling
threads take turns as the writer (no thread of its own), and each call still gets exactly its
own results, or the error of the write it was part of.

A caller that stopped waiting (deadline, cancel) is left out of the next write and gets
Cancelled; if one stops waiting during a write, that write is refused before anything is sent
(check_waiting) and redone for the others, so "a caller that gave up gets nothing written" holds
per caller, as without combining. (If that happens after a compare-and-set retry already wrote
some users, the redo reports those events as DUPLICATE: stored once, as an unacked retry would.)
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from interest_server import caller
from interest_server.errors import Cancelled

R = TypeVar("R")  # a record to write
A = TypeVar("A")  # its result


@dataclass
class _Call(Generic[R, A]):
    records: Sequence[R]
    is_waiting: Callable[[], bool]
    results: list[A] | None = None
    error: BaseException | None = None
    done: bool = False
    weight: int = field(init=False)

    def __post_init__(self) -> None:
        self.weight = max(len(self.records), 1)


class WriteCombiner(Generic[R, A]):
    """Runs `write(records) -> results` (one result per record, in order) for groups of calls.

    `budget` caps the records of one group (a single larger call still goes alone; 1 turns
    combining off: each call then writes on its own thread, concurrently, as without it);
    `on_group(calls)` is told each group's size (a metric).
    """

    def __init__(self, write: Callable[[list[R]], list[A]], budget: int,
                 on_group: Callable[[int], None] | None = None) -> None:
        self._write = write
        self._budget = budget
        self._on_group = on_group
        self._lock = threading.Lock()
        self._turn = threading.Condition(self._lock)
        self._queue: list[_Call[R, A]] = []
        self._writing = False

    def submit(self, records: Sequence[R]) -> list[A]:
        """Write `records` (alone or with other calls'); their results, in order."""
        if not records:
            return []
        if self._budget <= 1:  # coalescing off: every call writes on its own, concurrently
            return self._write(list(records))
        call = _Call[R, A](records, caller.current() or _always)
        with self._lock:
            self._queue.append(call)
            while not call.done and self._writing:
                self._turn.wait()
            if call.done:  # another thread's write took it
                return self._outcome(call)
            self._writing = True  # this thread writes, group after group, until its call is done
        try:
            while not call.done:
                self._write_next_group()
        finally:
            with self._lock:
                self._writing = False
                self._turn.notify_all()  # a waiting call takes over as the writer
        return self._outcome(call)

    @staticmethod
    def _outcome(call: _Call[R, A]) -> list[A]:
        if call.error is not None:
            raise call.error
        assert call.results is not None
        return call.results

    def _take_group(self) -> list[_Call[R, A]]:
        with self._lock:
            group, used = [], 0
            while self._queue:
                nxt = self._queue[0]
                if group and used + nxt.weight > self._budget:
                    break
                group.append(self._queue.pop(0))
                used += nxt.weight
            return group

    def _write_next_group(self) -> None:
        group = self._take_group()
        try:
            self._write_group(group)
        except BaseException as exc:  # every call of the group gets the error
            for c in group:
                if not c.done:
                    c.error, c.done = exc, True
        finally:
            with self._lock:
                self._turn.notify_all()

    def _write_group(self, group: list[_Call[R, A]]) -> None:
        live = group
        while True:
            gone = [c for c in live if not c.is_waiting()]
            for c in gone:
                c.error = Cancelled("the call was cancelled or passed its deadline; "
                                    "nothing was written")
                c.done = True
            live = [c for c in live if not c.done]
            if not live:
                return
            if self._on_group is not None:
                self._on_group(len(live))
            records = [r for c in live for r in c.records]
            try:
                with caller.bound(functools.partial(_all_waiting, live)):
                    results = self._write(records)
            except Cancelled:
                if all(c.is_waiting() for c in live):
                    raise  # not a caller of this group leaving: the group's error
                continue  # a caller left during the write (refused before sending): redo
            start = 0
            for c in live:
                c.results = results[start:start + len(c.records)]
                start += len(c.records)
                c.done = True
            return


def _always() -> bool:
    return True


def _all_waiting(calls: list[_Call]) -> bool:
    return all(c.is_waiting() for c in calls)
