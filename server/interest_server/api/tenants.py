"""Tenant resolution: which tenant a call acts for.

A call names its tenant in the `x-tenant-id` metadata (the Python and TypeScript clients send
it on every call when given a tenant); a call that names none acts for the default tenant, or,
with a token scoped to exactly one tenant, for that one.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from interest_server.api.auth import TokenTable, bearer
from interest_server.errors import InvalidArgument, PermissionDenied
from interest_server.state.keys import DEFAULT_TENANT, TENANT_PATTERN

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


__all__ = ["TENANT_HEADER", "TenantResolver", "named_tenant"]
