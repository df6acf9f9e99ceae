"""Tenants: which tenant a call acts for, and one engine per tenant in this process.

A call names its tenant in the `x-tenant-id` metadata (the Python and TypeScript clients send
it on every call when given a tenant); a call that names none acts for the default tenant, or,
with a token scoped to exactly one tenant, for that one. Tenants are isolated in Redis by key
prefix (keys.KeySpace): users, catalogs, concepts, popularity and change channels. Each tenant
gets its own InterestEngine (item index, catalog follower), created on its first call.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any

import redis

from .auth import TokenTable, bearer
from .concepts import ConceptPhrase
from .config import Settings
from .engine import Encoder, InterestEngine
from .errors import InvalidArgument, PermissionDenied, ResourceExhausted, Unavailable
from .keys import DEFAULT_TENANT, TENANT_PATTERN, KeySpace
from .user_store import UserStateCache

log = logging.getLogger(__name__)

TENANT_HEADER = "x-tenant-id"
"""Metadata key naming the tenant of a call."""


def named_tenant(metadata: Iterable[tuple[str, Any]] | None) -> str | None:
    """The tenant a call's metadata names (validated), or None when it names none."""
    for key, value in metadata or ():
        if key == TENANT_HEADER:
            if isinstance(value, bytes):
                value = value.decode("utf-8", "replace")
            value = value.strip()
            if not value:
                return None
            if not TENANT_PATTERN.fullmatch(value):
                raise InvalidArgument(
                    f"metadata {TENANT_HEADER!r} is {value[:80]!r}: a tenant name is 1-63 of "
                    "a-z, 0-9, '_' and '-', starting with a letter or digit")
            return value
    return None


class TenantResolver:
    """Decides the tenant of a call from its metadata and, with auth on, its token's grant."""

    def __init__(self, tokens: TokenTable | None = None) -> None:
        self.tokens = tokens if tokens else None

    def resolve(self, metadata: Iterable[tuple[str, Any]] | None) -> str:
        """The tenant; InvalidArgument for a malformed or missing-but-needed name,
        PermissionDenied for a tenant the token is not scoped to."""
        metadata = list(metadata or ())
        named = named_tenant(metadata)
        if self.tokens is None:
            return named or DEFAULT_TENANT
        grant = self.tokens.grant_of(bearer(metadata))
        if grant is None:  # the auth interceptor admits no such call; refuse anyway
            raise PermissionDenied("unknown token")
        if grant.tenants is None:
            return named or DEFAULT_TENANT
        if named is None:
            if len(grant.tenants) == 1:
                return next(iter(grant.tenants))
            raise InvalidArgument(f"the token acts for several tenants; name one in metadata "
                                  f"{TENANT_HEADER!r}")
        if named not in grant.tenants:
            raise PermissionDenied(f"the token may not act for tenant {named!r}")
        return named


class TenantEngines:
    """This process's engines, one per tenant, the default tenant's started with the server."""

    def __init__(self, settings: Settings, client: redis.Redis, encoder: Encoder,
                 rewrite: Callable[[str], list[ConceptPhrase]] | None = None) -> None:
        self.settings = settings
        self.client = client
        self.encoder = encoder
        self.rewrite = rewrite
        self.state_cache = UserStateCache(settings.user_cache_size)  # one bound for all tenants
        self._engines: dict[str, InterestEngine] = {DEFAULT_TENANT: self._make(DEFAULT_TENANT)}
        self._lock = threading.Lock()
        self._stopped = False

    def _make(self, tenant: str) -> InterestEngine:
        return InterestEngine(self.settings, self.client, self.encoder, self.rewrite,
                              keys=KeySpace(tenant), state_cache=self.state_cache)

    @property
    def default(self) -> InterestEngine:
        """The default tenant's engine."""
        return self._engines[DEFAULT_TENANT]

    def start(self) -> None:
        """Load the default tenant's catalog and follow its changes."""
        self.default.start()

    def get(self, tenant: str) -> InterestEngine:
        """The tenant's engine, created and started (its catalog loaded) on first use."""
        engine = self._engines.get(tenant)
        if engine is not None:
            return engine
        with self._lock:  # one creation at a time; calls of existing tenants never wait here
            engine = self._engines.get(tenant)
            if engine is not None:
                return engine
            if len(self._engines) >= self.settings.max_tenants:
                raise ResourceExhausted(
                    f"this server process serves {len(self._engines)} tenants, the limit "
                    f"(max_tenants={self.settings.max_tenants}); ask the operator to raise it")
            engine = self._make(tenant)
            engine.start()  # a Redis error here propagates: nothing is registered
            if self._stopped:
                engine.stop()
                raise Unavailable("the server is shutting down")
            self._engines[tenant] = engine
            log.info("tenant %s: %d items", tenant, engine.catalog_size())
            return engine

    def by_tenant(self) -> dict[str, InterestEngine]:
        """Every engine created so far, by tenant name."""
        return dict(self._engines)

    def stop(self) -> None:
        """Stop every engine's background work."""
        with self._lock:
            self._stopped = True
            engines = list(self._engines.values())
        for engine in engines:
            engine.stop()


__all__ = ["TENANT_HEADER", "TenantEngines", "TenantResolver", "named_tenant"]
