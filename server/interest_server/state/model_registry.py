"""Published interest models of a tenant in Redis: checkpoint blobs, a capped history, a pointer.

The registry stores bytes and versions only; what a blob means (and whether it is safe to load)
is the engine's concern (engine/model_follower.py). Every change runs as one compare-and-set
script over keys that share the tenant's hash tag, then is announced on the tenant's catalog
change stream. Spec: docs/storage-format.md
"""

from __future__ import annotations

import logging
import re

from interest_server.state.keys import DEFAULT_KEYS, KeySpace
from interest_server.state.redis_conn import AnyRedis

log = logging.getLogger(__name__)

MODEL_OP = "model"
"""The catalog change stream's `op` for "the published model changed: read the pointer"."""
HISTORY_CAP = 5
"""Published versions kept per tenant (the current one included); older blobs are deleted."""
MAX_BLOB_BYTES = 512 * 1024 * 1024
"""Redis' limit on one string value."""
VERSION_PATTERN = re.compile(r"[A-Za-z0-9._-]{1,100}")
"""What a version may look like: it becomes part of a key name (no braces, no spaces)."""
CAS_ATTEMPTS = 16

# KEYS: current, history, blob of the new version, blobs of versions pushed out of the history.
# ARGV: version, blob, the history as read (versions joined by "\n"), the cap.
_PUBLISH = """
local hist = redis.call('LRANGE', KEYS[2], 0, -1)
if table.concat(hist, '\\n') ~= ARGV[3] then return 0 end
redis.call('SET', KEYS[3], ARGV[2])
redis.call('LREM', KEYS[2], 0, ARGV[1])
redis.call('LPUSH', KEYS[2], ARGV[1])
redis.call('LTRIM', KEYS[2], 0, tonumber(ARGV[4]) - 1)
for i = 4, #KEYS do redis.call('DEL', KEYS[i]) end
redis.call('SET', KEYS[1], ARGV[1])
return 1
"""
# KEYS: current, history, blobs to delete. ARGV: the history as read; how many entries to pop.
# What is left at the head of the history becomes current (none left: no published model).
_POP = """
local hist = redis.call('LRANGE', KEYS[2], 0, -1)
if table.concat(hist, '\\n') ~= ARGV[1] then return 0 end
local n = tonumber(ARGV[2])
for _ = 1, n do redis.call('LPOP', KEYS[2]) end
for i = 3, #KEYS do redis.call('DEL', KEYS[i]) end
local head = redis.call('LINDEX', KEYS[2], 0)
if head then redis.call('SET', KEYS[1], head) else redis.call('DEL', KEYS[1]) end
return 1
"""


class NothingToRollBack(Exception):  # noqa: N818 - a result of the registry, mapped by the CLI
    """The tenant has fewer than two published versions."""

    def __init__(self, history: list[str]) -> None:
        super().__init__(history)
        self.history = history


class RegistryBusy(Exception):  # noqa: N818
    """Other writers kept changing the history; nothing was changed."""


def check_version(version: str) -> str:
    """The version, or ValueError when it cannot be part of a key."""
    if not VERSION_PATTERN.fullmatch(version):
        raise ValueError(f"not a model version: {version!r}")
    return version


class ModelRegistry:
    """One tenant's published models (`KeySpace.model_current`, `model_history`,
    `model_blob(version)`)."""

    def __init__(self, client: AnyRedis, keys: KeySpace = DEFAULT_KEYS,
                 stream_maxlen: int = 100_000) -> None:
        self.redis = client
        self.keys = keys
        self.stream_maxlen = stream_maxlen
        self._publish = client.register_script(_PUBLISH)
        self._pop = client.register_script(_POP)

    # ---- reads ----------------------------------------------------------------------------

    def current(self) -> str | None:
        """The current published version, or None when the tenant has none (one GET)."""
        raw = self.redis.get(self.keys.model_current)
        return raw.decode() if raw else None

    def history(self) -> list[str]:
        """Published versions, the current one first."""
        return [v.decode() for v in self.redis.lrange(self.keys.model_history, 0, -1)]

    def blob(self, version: str) -> bytes | None:
        """A published version's checkpoint bytes; None once it has left the history."""
        raw = self.redis.get(self.keys.model_blob(check_version(version)))
        return bytes(raw) if raw is not None else None

    # ---- writes ---------------------------------------------------------------------------

    def publish(self, version: str, blob: bytes, cap: int = HISTORY_CAP) -> list[str]:
        """Store the blob, put its version at the head of the history (moving it there if it
        was already published), delete the blobs pushed past `cap`, point `current` at it and
        announce the change; returns the history after."""
        check_version(version)
        if cap < 1:
            raise ValueError(f"history cap {cap}: keep at least the current version")
        if len(blob) > MAX_BLOB_BYTES:
            raise ValueError(f"the checkpoint is {len(blob)} bytes; a Redis string holds at "
                             f"most {MAX_BLOB_BYTES}")
        for _attempt in range(CAS_ATTEMPTS):
            old = self.history()
            new = [version, *(v for v in old if v != version)]
            dropped = [self.keys.model_blob(v) for v in new[cap:]]
            keys = [self.keys.model_current, self.keys.model_history,
                    self.keys.model_blob(version), *dropped]
            if int(self._publish(keys=keys, args=[version, blob, "\n".join(old), cap])):
                self.announce()
                return new[:cap]
        raise RegistryBusy("the model history kept changing; retry")

    def rollback(self) -> tuple[str, str]:
        """Withdraw the current version (its blob is deleted) and make the previous one
        current; returns (withdrawn, now current). NothingToRollBack when there is no
        previous version."""
        for _attempt in range(CAS_ATTEMPTS):
            old = self.history()
            if len(old) < 2:
                raise NothingToRollBack(old)
            if self._pop_versions(old, 1):
                return old[0], old[1]
        raise RegistryBusy("the model history kept changing; retry")

    def unpublish(self) -> list[str]:
        """Withdraw every published version (replicas return to their configured model);
        returns the versions withdrawn, newest first."""
        for _attempt in range(CAS_ATTEMPTS):
            old = self.history()
            if self._pop_versions(old, len(old)):
                return old
        raise RegistryBusy("the model history kept changing; retry")

    def _pop_versions(self, old: list[str], n: int) -> bool:
        keys = [self.keys.model_current, self.keys.model_history,
                *(self.keys.model_blob(v) for v in old[:n])]
        if not int(self._pop(keys=keys, args=["\n".join(old), n])):
            return False
        self.announce()
        return True

    def announce(self) -> None:
        """Tell every replica's catalog follower to read the pointer now (they also poll it,
        so a lost entry only delays the switch)."""
        # After the script, in its own round trip: the stream has no hash tag of the model keys.
        self.redis.xadd(self.keys.catalog_changes, {"op": MODEL_OP, "ids": "[]"},
                        maxlen=self.stream_maxlen, approximate=True)


__all__ = ["HISTORY_CAP", "MODEL_OP", "ModelRegistry", "NothingToRollBack", "RegistryBusy",
           "check_version"]
