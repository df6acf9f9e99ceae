"""Live recommendation streams: user-change notifications over Redis pub/sub, and the watchers.

Every write of a user's state (events applied, concepts stored, user deleted) is followed by a
PUBLISH on the user's channel (`KeySpace.channel`, e.g. `u:{42}:changed`), whichever process made
it. Each server process runs one subscriber thread (`WatchHub`), subscribed only to the channels of
users watched in this process, and wakes their watchers. A watcher recomputes the list when woken,
at most once per minimum interval, and pushes it if it differs from the last one it pushed: a
burst of N changes gives at most one push per interval, computed from the latest state.

Pub/sub delivers at most once (a subscriber that reconnects misses what was published meanwhile),
so the subscriber wakes every watcher of a channel each time it (re)subscribes, and an idle watcher
recomputes every RESYNC_S anyway (which also catches what a notification cannot: keys expired by
user_ttl_s, catalog changes, a failed PUBLISH). Why pub/sub and not keyspace notifications: those
need `notify-keyspace-events` set on the Redis server (often not allowed on managed Redis), fire
once per key touched (six keys per write), and are not broadcast across a Redis Cluster.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

import redis

from interest_server.errors import Unavailable
from interest_server.ops import metrics
from interest_server.state.keys import DEFAULT_KEYS, KeySpace
from interest_server.state.redis_conn import REDIS_ERRORS, is_cluster

log = logging.getLogger(__name__)

T = TypeVar("T")

RESYNC_S = 30.0
"""An idle watcher recomputes after this long even without a notification (push if changed)."""
POLL_S = 0.05
"""How often the subscriber thread looks for watchers to (un)subscribe between messages."""
SUBSCRIBE_WAIT_S = 2.0
"""How long a new watcher waits for its SUBSCRIBE to be confirmed before its first list."""
MAX_INTERVAL_MS = 3_600_000
"""Largest min_interval_ms a request may ask for."""
_BACKOFF_S = (0.1, 2.0)
_WARN_EVERY_S = 60.0


class ChangeNotifier:
    """Publishes "this user's state changed" after a successful concepts write or deletion
    (event writes publish from their script). Never fails the write: the state is stored; a
    lost notification is caught by the watchers' periodic resync."""

    def __init__(self, client: redis.Redis, keys: KeySpace = DEFAULT_KEYS) -> None:
        self.redis = client
        self.keys = keys
        self._last_warning = 0.0

    def changed(self, user_ids: Iterable[str]) -> None:
        """Publish on each user's channel; one round trip for all of them."""
        channels = [self.keys.channel(u) for u in user_ids]
        if not channels:
            return
        try:
            if len(channels) == 1:
                self.redis.publish(channels[0], b"")
            else:
                # A cluster pipeline cannot route a keyless PUBLISH; any one node can, and the
                # cluster bus broadcasts it to subscribers on every node.
                node = (self.redis.get_default_node().redis_connection
                        if is_cluster(self.redis) else self.redis)
                pipe = node.pipeline(transaction=False)
                for channel in channels:
                    pipe.publish(channel, b"")
                pipe.execute()
        except REDIS_ERRORS as exc:
            metrics.redis_error(exc)
            now = time.monotonic()
            if now - self._last_warning > _WARN_EVERY_S:
                self._last_warning = now
                log.warning("could not publish a user change (%s); watchers resync within "
                            "%.0f s", type(exc).__name__, RESYNC_S)


class Watcher:
    """One WatchRecommendations stream: woken by the hub, closed by the client or shutdown."""

    def __init__(self, channel: str) -> None:
        self.channel = channel
        self.ready = threading.Event()
        self._cond = threading.Condition()
        self._dirty = False
        self._closed: str | None = None

    def notify(self) -> None:
        """The user's state (may have) changed."""
        with self._cond:
            self._dirty = True
            self._cond.notify_all()

    def close(self, reason: str = "cancelled") -> None:
        """End the stream: 'cancelled' (the caller left) or 'shutdown' (the server stops)."""
        with self._cond:
            if self._closed is None:
                self._closed = reason
            self._cond.notify_all()
        self.ready.set()

    def _check(self) -> bool:
        """False once cancelled; raises Unavailable on shutdown."""
        if self._closed == "shutdown":
            raise Unavailable("the server is shutting down; watch again to reach another "
                              "server process")
        return self._closed is None

    def _take(self) -> None:
        with self._cond:
            self._dirty = False

    def _wait_change(self, timeout_s: float) -> None:
        with self._cond:
            self._cond.wait_for(lambda: self._dirty or self._closed is not None, timeout_s)

    def _sleep(self, seconds: float) -> None:
        with self._cond:
            self._cond.wait_for(lambda: self._closed is not None, seconds)


class WatchHub:
    """This process's watchers and its one subscriber thread."""

    def __init__(self, client: redis.Redis) -> None:
        self.redis = client
        self._lock = threading.Lock()
        self._by_channel: dict[str, set[Watcher]] = {}
        self._confirmed: set[str] = set()
        self._count = 0
        self._changed = False
        self._stopping = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def active(self) -> int:
        """Open watch streams."""
        return self._count

    def start(self) -> None:
        """Start the subscriber thread."""
        self._thread = threading.Thread(target=self._run, name="watch-subscriber", daemon=True)
        self._thread.start()

    def shutdown(self) -> None:
        """End every watch stream (UNAVAILABLE: watch again elsewhere) and refuse new ones."""
        with self._lock:
            self._stopping = True
            watchers = [w for ws in self._by_channel.values() for w in ws]
        for w in watchers:
            w.close("shutdown")

    def stop(self) -> None:
        """shutdown(), then stop the subscriber thread."""
        self.shutdown()
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    # ---- streams ------------------------------------------------------------------------

    def watch(self, channel: str, compute: Callable[[], T], encode: Callable[[T], bytes],
              interval_s: float, on_done: Callable[[Callable[[], None]], object]
              ) -> Iterator[T]:
        """The current value of compute() at once, then again after each change announced on
        `channel` (a user's, KeySpace.channel), at most once per interval_s and only when
        encode() of it differs from the last pushed.

        `on_done` registers a callback run when the call ends (grpc's context.add_callback).
        Blocking in `yield` (a slow reader) holds no queue: changes meanwhile only mark the
        watcher dirty, and the next list is computed from the state current then.
        """
        watcher = self._register(channel)
        try:
            if on_done(watcher.close) is False:  # the call ended already
                return
            watcher.ready.wait(SUBSCRIBE_WAIT_S)
            last: bytes | None = None
            last_push = float("-inf")
            while watcher._check():
                watcher._take()
                value = compute()
                data = encode(value)
                if data != last:
                    yield value
                    metrics.WATCH_PUSHES.inc()
                    last, last_push = data, time.monotonic()
                watcher._wait_change(RESYNC_S)
                if not watcher._check():
                    break
                delay = last_push + interval_s - time.monotonic()
                if delay > 0:
                    watcher._sleep(delay)
        finally:
            self._unregister(watcher)

    def _register(self, channel: str) -> Watcher:
        watcher = Watcher(channel)
        with self._lock:
            if self._stopping:
                raise Unavailable("the server is shutting down; watch again to reach another "
                                  "server process")
            self._count += 1
            self._by_channel.setdefault(watcher.channel, set()).add(watcher)
            if watcher.channel in self._confirmed:
                watcher.ready.set()
            else:
                self._changed = True
        return watcher

    def _unregister(self, watcher: Watcher) -> None:
        with self._lock:
            watchers = self._by_channel.get(watcher.channel)
            if watchers is None or watcher not in watchers:
                return
            self._count -= 1
            watchers.discard(watcher)
            if not watchers:
                del self._by_channel[watcher.channel]
                self._changed = True

    # ---- the subscriber thread ----------------------------------------------------------

    def _run(self) -> None:
        backoff = _BACKOFF_S[0]
        while not self._stop.is_set():
            pubsub = self.redis.pubsub()
            requested: set[str] = set()
            with self._lock:
                self._changed = True  # (re)subscribe everything watched now
            try:
                while not self._stop.is_set():
                    self._reconcile(pubsub, requested)
                    message = pubsub.get_message(timeout=POLL_S)
                    if message is not None:
                        self._handle(message, requested)
                        backoff = _BACKOFF_S[0]
            except REDIS_ERRORS as exc:
                metrics.redis_error(exc)
                # Once per outage at WARNING (the health monitor reports the outage itself).
                log.log(logging.WARNING if backoff == _BACKOFF_S[0] else logging.DEBUG,
                        "watch subscriber: %s; reconnecting in %.1f s", type(exc).__name__,
                        backoff)
                with self._lock:
                    self._confirmed.clear()
                self._stop.wait(backoff)
                backoff = min(backoff * 2, _BACKOFF_S[1])
            except Exception:  # a bug must not kill notifications for the process's lifetime
                log.exception("watch subscriber failed; restarting it")
                self._stop.wait(backoff)
            finally:
                try:
                    pubsub.close()
                except Exception:  # noqa: BLE001 - closing a broken connection
                    log.debug("closing the pubsub connection failed", exc_info=True)

    def _reconcile(self, pubsub: redis.client.PubSub, requested: set[str]) -> None:
        with self._lock:
            if not self._changed:
                return
            self._changed = False
            wanted = set(self._by_channel)
            drop = requested - wanted
            self._confirmed -= drop
        add = wanted - requested
        if drop:
            pubsub.unsubscribe(*drop)
            requested -= drop
        if add:
            pubsub.subscribe(*add)
            requested |= add

    def _handle(self, message: dict, requested: set[str]) -> None:
        kind = message.get("type")
        channel = message.get("channel")
        if isinstance(channel, bytes):
            channel = channel.decode("utf-8", "replace")
        if kind == "message":
            metrics.WATCH_NOTIFICATIONS.inc()
            with self._lock:
                watchers = list(self._by_channel.get(channel, ()))
            for w in watchers:
                w.notify()
        elif kind == "subscribe" and channel in requested:  # not a late one, since dropped
            with self._lock:
                self._confirmed.add(channel)
                watchers = list(self._by_channel.get(channel, ()))
            for w in watchers:  # wake on every (re)subscribe: pub/sub may have missed changes
                w.notify()
                w.ready.set()
