"""SIGTERM / SIGINT recorded without a lock, for a main thread that polls for them."""

from __future__ import annotations

import signal
import time

POLL_S = 0.1
"""How often a waiting main thread looks for a recorded signal (the shutdown latency it adds)."""


class StopSignals:
    """Records SIGTERM and SIGINT from the moment it is made; `wait` polls for them.

    A Python signal handler runs in the main thread between two bytecodes, possibly inside
    `threading.Event.set()` run by the handler of an earlier signal: a handler that calls `set()`
    again takes the Event's non-reentrant lock a second time and the process hangs for good (seen:
    `timeout` forwarding a SIGTERM just after `kill`'s). This handler only appends to a list,
    which takes no lock, so any number of signals in any order is safe.
    """

    def __init__(self) -> None:
        self.received: list[int] = []
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._record)

    def _record(self, signum: int, _frame: object) -> None:
        self.received.append(signum)

    def wait(self, timeout_s: float) -> bool:
        """Sleep until a signal has been recorded or `timeout_s` has passed; True on a signal."""
        deadline = time.monotonic() + timeout_s
        while not self.received:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            time.sleep(min(left, POLL_S))
        return True


__all__ = ["StopSignals"]
