"""A tenant's attribute synonyms in Redis: one hash, changed by a capped script, announced on the
catalog change stream so every process's follower reloads them. Spec: docs/storage-format.md"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import redis

from interest_server.model.concepts import AttrPair
from interest_server.state.keys import DEFAULT_KEYS, KeySpace

log = logging.getLogger(__name__)

SEPARATOR = "\x1f"
"""Between attribute and value in a hash field (ASCII unit separator: printable text, which
names and values must be, never holds it)."""
SYNONYMS_OP = "synonyms"
"""The catalog change stream's `op` for "the synonyms changed: reload them"."""


@dataclass(frozen=True)
class SynonymsWritten:
    """What a SynonymStore.replace call did."""

    stored: int
    deleted: int
    total: int
    """Synonyms the tenant holds after the call."""


class OverCap(Exception):  # noqa: N818 - a result of the store, mapped by the engine
    """The call would leave more synonyms than the cap; nothing was written."""

    def __init__(self, total: int) -> None:
        super().__init__(total)
        self.total = total


def field_name(pair: AttrPair) -> str:
    """The hash field of an attribute value."""
    return pair[0] + SEPARATOR + pair[1]


class SynonymStore:
    """Synonyms live in one hash per tenant, `(attribute, value) -> [synonym, ...]`."""

    def __init__(self, client: redis.Redis, stream_maxlen: int,
                 keys: KeySpace = DEFAULT_KEYS) -> None:
        self.redis = client
        self.keys = keys
        self.stream_maxlen = stream_maxlen
        self._replace = client.register_script(
            (Path(__file__).parent / "lua" / "set_synonyms.lua").read_text())

    def replace(self, entries: Sequence[tuple[AttrPair, Sequence[str]]], cap: int
                ) -> SynonymsWritten:
        """Replace each named value's list (an empty list deletes it), all or nothing: raises
        OverCap, writing nothing, when the tenant would hold more than `cap` synonyms."""
        latest = dict(entries)  # a value named twice takes its last entry
        argv: list[str | int] = [cap]
        for pair, synonyms in latest.items():
            argv += [field_name(pair), len(synonyms),
                     json.dumps(list(synonyms), ensure_ascii=False) if synonyms else ""]
        reply = self._replace(keys=[self.keys.synonyms], args=argv)
        if int(reply[0]) == 0:
            raise OverCap(int(reply[1]))
        # Announced after the write, in its own round trip (as catalog changes are), so a
        # follower that sees the entry reads the new lists.
        self.redis.xadd(self.keys.catalog_changes, {"op": SYNONYMS_OP, "ids": "[]"},
                        maxlen=self.stream_maxlen, approximate=True)
        return SynonymsWritten(int(reply[1]), int(reply[2]), int(reply[3]))

    def load(self) -> list[tuple[AttrPair, list[str]]]:
        """Every stored list, by (attribute, value)."""
        out = []
        for raw_field, raw in self.redis.hgetall(self.keys.synonyms).items():
            attribute, _, value = raw_field.decode().partition(SEPARATOR)
            out.append(((attribute, value), json.loads(raw)))
        return sorted(out)
