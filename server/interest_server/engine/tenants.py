"""One engine per tenant in this process.

Tenants are isolated in Redis by key prefix (keys.KeySpace): users, catalogs, concepts,
popularity and change channels. Each tenant gets its own InterestEngine (item index, catalog
follower), created on its first call.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import redis

from interest_server.config import Settings
from interest_server.engine.engine import Encoder, InterestEngine
from interest_server.errors import ResourceExhausted, Unavailable
from interest_server.model.concepts import ConceptPhrase
from interest_server.state.keys import DEFAULT_TENANT, KeySpace
from interest_server.state.user_store import UserStateCache

log = logging.getLogger(__name__)


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


__all__ = ["TenantEngines"]
