"""Admission of long-lived streams, which each hold one of the server's RPC threads while open.

The gRPC server runs every call on a fixed pool of `workers` threads. A StreamEvents or
WatchRecommendations call keeps its thread for as long as the client keeps the stream open
(hours, for a backend that streams its events), so without a cap a handful of streams took every
thread and unary calls (Recommend, IngestEvents) queued until their deadline. Streams take slots
from a shared pool that leaves `Settings.unary_reserve` threads to everything else; beyond it, or
beyond its kind's own cap, a stream is refused at once with RESOURCE_EXHAUSTED.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from interest_server.config import Settings
from interest_server.errors import ResourceExhausted

EVENTS, WATCH = "event", "watch"


class StreamSlots:
    """Thread-safe counts of open streams per kind against per-kind caps and a shared total."""

    def __init__(self, settings: Settings) -> None:
        self.total = settings.stream_slots
        self.workers = settings.workers
        self.reserve = settings.unary_reserve
        self.caps = {EVENTS: ("max_event_streams", settings.max_event_streams),
                     WATCH: ("max_watch_streams", settings.max_watch_streams)}
        self._open = dict.fromkeys(self.caps, 0)
        self._lock = threading.Lock()

    @contextmanager
    def hold(self, kind: str) -> Iterator[None]:
        """Hold a slot of `kind` for the body; raises ResourceExhausted when none is free."""
        name, cap = self.caps[kind]
        with self._lock:
            if self._open[kind] >= cap:
                raise ResourceExhausted(
                    f"{self._open[kind]} {kind} streams are open on this server process; the "
                    f"limit is {name}={cap}" + _advice(kind))
            taken = sum(self._open.values())
            if taken >= self.total:
                raise ResourceExhausted(
                    f"all {self.total} stream slots of this server process are taken "
                    f"({self._open[EVENTS]} event, {self._open[WATCH]} watch streams; "
                    f"workers={self.workers} keeps {self.reserve} threads for other calls); "
                    f"raise --workers (with max_event_streams / max_watch_streams)"
                    + _advice(kind))
            self._open[kind] += 1
        try:
            yield
        finally:
            with self._lock:
                self._open[kind] -= 1


def _advice(kind: str) -> str:
    if kind == EVENTS:
        return ", send the events with IngestEvents, or open the stream on another server process"
    return ", or watch on another server process"
