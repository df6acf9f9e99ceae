"""Follows a tenant's published interest model (state/model_registry.py) and switches to it live.

A replica reads the pointer once a second (and at once when the catalog follower reads a `model`
announcement). On a change it loads the blob with torch's weights-only unpickler, so bytes in
Redis can hold tensors, numbers and strings but never code; a blob that fails that, was trained
on another text model, or does not hash to its version is refused: the replica logs it, counts
it (interest_model_load_failures) and keeps serving the model it has.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import numpy as np

from interest_server.model.interest_model import InterestFunction
from interest_server.ops import metrics
from interest_server.state.model_registry import ModelRegistry
from interest_server.state.redis_conn import REDIS_ERRORS

log = logging.getLogger(__name__)


class ModelRefused(Exception):  # noqa: N818 - a result, counted by reason
    """A published blob this process will not serve."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def load_checkpoint_bytes(blob: bytes, version: str, encoder_model_id: str,
                          text_vector: Callable[[str], np.ndarray],
                          text_dim: int) -> InterestFunction:
    """The learned interest function of a published blob; ModelRefused when it is not a safe
    sequence-model checkpoint (reason `load`), was trained on another encoder's text vectors
    (`encoder`), or is not the version it was published as (`version`)."""
    from interest_server.model.learned_interest import LearnedInterest
    from interest_server.model.sequence_model import SequenceInterestModel

    try:  # the one loader of checkpoints; weights_only, so a __reduce__ payload never runs
        model = SequenceInterestModel.load(blob)
    except Exception as exc:  # any failure to read the bytes as a checkpoint is a refusal
        raise ModelRefused("load", f"not a loadable sequence-model checkpoint "
                                   f"({exc.__class__.__name__}: {str(exc)[:300]})") from None
    if model.version != version:
        raise ModelRefused("version", f"the blob holds model {model.version}, not {version}")
    if model.text_model_id != encoder_model_id:
        raise ModelRefused("encoder", f"trained on text vectors of {model.text_model_id!r}, "
                                      f"but this server's encoder is {encoder_model_id!r}")
    if model.text_dim != text_dim:
        raise ModelRefused("encoder", f"reads text vectors of dimension {model.text_dim}, "
                                      f"the encoder's have {text_dim}")
    return LearnedInterest(model, text_vector, text_dim)


class ModelFollower:
    """Keeps one engine on its tenant's published model, else on the configured one."""

    def __init__(self, registry: ModelRegistry, configured: InterestFunction,
                 load: Callable[[bytes, str], InterestFunction],
                 install: Callable[[InterestFunction], None], active: Callable[[], str],
                 poll_s: float = 1.0) -> None:
        """`load(blob, version)` builds a model or raises ModelRefused; `install(model)`
        switches the engine; `active()` is the version the engine serves now."""
        self.registry = registry
        self.configured = configured
        self.load = load
        self.install = install
        self.active = active
        self.poll_s = poll_s
        self.tenant = registry.keys.tenant
        self._seen: str | None = None  # the pointer as last acted on (None: nothing published)
        self._synced = False
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def sync(self) -> None:
        """Read the pointer once and switch if it moved. Redis errors propagate."""
        with self._lock:
            current = self.registry.current()
            if self._synced and current == self._seen:
                return
            if current is None:
                if self.active() != self.configured.version:
                    log.info("tenant %s: no published interest model; back to the configured "
                             "one, %s", self.tenant, self.configured.version)
                    self.install(self.configured)
                    metrics.MODEL_SWITCHES.labels(self.tenant).inc()
                self._seen, self._synced = None, True
                return
            if current == self.active():  # e.g. a rollback to the model already served
                self._seen, self._synced = current, True
                return
            blob = self.registry.blob(current)
            if blob is None:  # withdrawn between the two reads: the next poll sees what's next
                return
            try:
                model = self.load(blob, current)
            except ModelRefused as refused:
                metrics.MODEL_LOAD_FAILURES.labels(self.tenant, refused.reason).inc()
                log.error("tenant %s: refusing published interest model %s: %s; still "
                          "serving %s", self.tenant, current, refused, self.active())
                self._seen, self._synced = current, True  # not retried until the pointer moves
                return
            previous = self.active()
            self._seen, self._synced = current, True  # a failed install is not retried either
            try:
                self.install(model)
            except Exception:
                metrics.MODEL_LOAD_FAILURES.labels(self.tenant, "install").inc()
                log.exception("tenant %s: installing published interest model %s failed; "
                              "still serving %s", self.tenant, current, previous)
                return
            metrics.MODEL_SWITCHES.labels(self.tenant).inc()
            log.info("tenant %s: interest model %s -> %s (published)", self.tenant, previous,
                     current)

    def wake(self) -> None:
        """Read the pointer now (a `model` announcement arrived); returns at once."""
        self._wake.set()

    def start(self) -> None:
        """Follow the pointer in a daemon thread."""
        self._thread = threading.Thread(target=self._run, name="model-follower", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.poll_s)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                self.sync()
            except REDIS_ERRORS as exc:
                log.warning("model follower: %s; retrying", exc.__class__.__name__)
            except Exception:
                log.exception("model follower: switching the interest model failed; still "
                              "serving %s", self.active())

    def stop(self) -> None:
        """Stop following."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=self.poll_s + 2)


__all__ = ["ModelFollower", "ModelRefused", "load_checkpoint_bytes"]
