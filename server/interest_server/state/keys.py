"""Redis key builders: every key of one user shares a {hash tag} so scripts stay cluster-safe.

A tenant's keys carry the prefix `t:<tenant>:` (`t:acme:u:{42}:rec`, `t:acme:item:7`); the
default tenant's keys have no prefix, so data written before tenants existed stays where it is.
The prefix sits outside the braces: the hash tag, and so the slot, is the user's alone.
Spec: docs/storage-format.md
"""

from __future__ import annotations

import re
from dataclasses import dataclass

CATALOG_IDS = "catalog:ids"
"""Set of every item id in the catalog."""
CATALOG_CHANGES = "catalog:changes"
"""Stream of catalog changes that every server process follows."""
CATALOG_SYNONYMS = "catalog:synonyms"
"""Hash attribute + US + value -> JSON list of the value's synonyms."""
POPULARITY = "pop"
"""Sorted set item id -> forward-decayed interaction count."""

DEFAULT_TENANT = "default"
"""The tenant of a call that names none; its keys have no prefix."""
TENANT_PATTERN = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")
"""Tenant names: lower-case letters, digits, '_' and '-', 1-63 characters, so a name is safe in
a key, a metric label and a log line, and cannot contain a hash-tag brace."""


def _tag(user_id: str) -> str:
    # A brace inside the id would end the hash tag early (or make it empty, which hashes the
    # whole key), scattering one user's keys over slots; escape braces injectively.
    # An empty tag ("{}") is ignored by Redis, which then hashes the whole key: map "" to a tag
    # no escaped id can produce (every "%" of an id becomes "%25").
    return user_id.replace("%", "%25").replace("{", "%7B").replace("}", "%7D") or "%00"


def _untag(tag: str) -> str:
    # The inverse of _tag, in one pass (so "%257B", the escaping of "%7B", comes back whole).
    if tag == "%00":
        return ""
    return re.sub(r"%(25|7B|7D)", lambda m: {"25": "%", "7B": "{", "7D": "}"}[m.group(1)], tag)


@dataclass(frozen=True)
class UserKeys:
    """The Redis keys holding one user's state."""

    record: str
    """String: the user's behaviour state in record format 2 (see user_record.py)."""
    concepts: str
    """String: JSON of the user's stated concepts with their vectors."""
    log: str
    """Stream: the user's acknowledged events, capped (event_log_maxlen), appended by the same
    script that writes the record; what the trainer reads (event_log.py)."""
    state: str
    """Format 1 (read to convert, deleted on the user's first format-2 write): hash of v, vec,
    t, n, m, u, e."""
    window: str
    """Format 1: list of recent events (compact JSON), newest first."""
    seen: str
    """Format 1: set of item ids the user consumed."""
    event_ids: str
    """Format 1: hash event_id -> payload fingerprint."""
    event_times: str
    """Format 1: sorted set event_id -> time received (ms)."""

    def all(self) -> list[str]:
        """Every key of the user, in a fixed order (the order scripts receive them in)."""
        return [self.record, self.concepts, self.log, self.state, self.window, self.seen,
                self.event_ids, self.event_times]


@dataclass(frozen=True)
class KeySpace:
    """Every key of one tenant."""

    tenant: str = DEFAULT_TENANT

    def __post_init__(self) -> None:
        if not TENANT_PATTERN.fullmatch(self.tenant):
            raise ValueError(f"not a tenant name: {self.tenant!r}")

    @property
    def prefix(self) -> str:
        """'' for the default tenant, else 't:<tenant>:'."""
        return "" if self.tenant == DEFAULT_TENANT else f"t:{self.tenant}:"

    @property
    def catalog_ids(self) -> str:
        """Set of every item id in the tenant's catalog."""
        return self.prefix + CATALOG_IDS

    @property
    def catalog_changes(self) -> str:
        """Stream of the tenant's catalog changes."""
        return self.prefix + CATALOG_CHANGES

    @property
    def synonyms(self) -> str:
        """Hash of the tenant's attribute synonyms: "<attribute>\\x1f<value>" -> JSON list."""
        return self.prefix + CATALOG_SYNONYMS

    @property
    def popularity(self) -> str:
        """Sorted set item id -> decayed interaction count, for the tenant."""
        return self.prefix + POPULARITY

    @property
    def model_current(self) -> str:
        """String: the version of the tenant's published interest model, absent when none is
        published (e.g. models:{default}:current). All model keys of a tenant share the hash
        tag `{<tenant>}`, so the registry's scripts stay on one cluster slot."""
        return self.prefix + "models:{" + self.tenant + "}:current"

    @property
    def model_history(self) -> str:
        """List: the tenant's published model versions, newest (the current one) first,
        capped (state/model_registry.py)."""
        return self.prefix + "models:{" + self.tenant + "}:history"

    def model_blob(self, version: str) -> str:
        """String: the checkpoint bytes of one published model version."""
        return self.prefix + "models:{" + self.tenant + "}:blob:" + version

    def user(self, user_id: str) -> UserKeys:
        """Keys of one user, e.g. u:{42}:rec (t:acme:u:{42}:rec for tenant acme)."""
        prefix = self.prefix + "u:{" + _tag(user_id) + "}:"
        return UserKeys(
            record=prefix + "rec",
            concepts=prefix + "concepts",
            log=prefix + "log",
            state=prefix + "state",
            window=prefix + "win",
            seen=prefix + "seen",
            event_ids=prefix + "ids",
            event_times=prefix + "idt",
        )

    def user_pattern(self, user_id: str) -> str:
        """A SCAN pattern matching every key of one user (for audits and tests)."""
        tag = _tag(user_id)
        escaped = "".join("\\" + c if c in "*?[]\\" else c for c in tag)
        return self.prefix + "u:\\{" + escaped + "\\}:*"

    @property
    def log_pattern(self) -> str:
        """A SCAN pattern matching every user's event log of this tenant (and no other
        tenant's: the default tenant's keys start with `u:`, another tenant's with `t:`)."""
        return self.prefix + "u:{*}:log"

    def user_of(self, key: str | bytes) -> str:
        """The user id a user key of this tenant belongs to (`t:acme:u:{a%7Bb}:log` -> `a{b`);
        ValueError for any other key."""
        text = key.decode() if isinstance(key, bytes) else key
        head = self.prefix + "u:{"
        end = text.find("}", len(head))
        if not text.startswith(head) or end < 0:
            raise ValueError(f"not a user key of tenant {self.tenant!r}: {text!r}")
        return _untag(text[len(head):end])

    def item(self, item_id: str) -> str:
        """Hash holding one catalog item: text, attrs (JSON), vec (packed float32), m (model)."""
        return self.prefix + "item:" + item_id

    def channel(self, user_id: str) -> str:
        """Pub/sub channel announcing that a user's state changed, e.g. u:{42}:changed. It
        carries the user's hash tag, so a sharded channel (SPUBLISH, Redis 7+) would live on
        the user's shard; the ACL patterns `&u:*` and `&t:*` cover it."""
        return self.prefix + "u:{" + _tag(user_id) + "}:changed"


DEFAULT_KEYS = KeySpace()
"""The default tenant's keys."""


def user_keys(user_id: str) -> UserKeys:
    """Keys of one user of the default tenant, e.g. u:{42}:rec."""
    return DEFAULT_KEYS.user(user_id)


def user_key_pattern(user_id: str) -> str:
    """A SCAN pattern matching every key of one user of the default tenant."""
    return DEFAULT_KEYS.user_pattern(user_id)


def item_key(item_id: str) -> str:
    """Hash of one item of the default tenant."""
    return DEFAULT_KEYS.item(item_id)


def user_channel(user_id: str) -> str:
    """Change channel of one user of the default tenant."""
    return DEFAULT_KEYS.channel(user_id)
