"""Which tenant a call acts for, and the keys of a tenant."""

from __future__ import annotations

import pytest
from interest_server.api.auth import TokenTable, parse_tokens
from interest_server.api.tenants import TenantResolver, named_tenant
from interest_server.errors import InvalidArgument, PermissionDenied
from interest_server.state.keys import DEFAULT_KEYS, KeySpace, user_keys
from redis.crc import key_slot


def md(tenant: str | None = None, token: str | None = None) -> list[tuple[str, str]]:
    out = [("user-agent", "x")]
    if tenant is not None:
        out.append(("x-tenant-id", tenant))
    if token is not None:
        out.append(("authorization", f"Bearer {token}"))
    return out


def test_named_tenant() -> None:
    assert named_tenant(md()) is None
    assert named_tenant(md("")) is None and named_tenant(md("  ")) is None
    assert named_tenant(md("acme-1_b")) == "acme-1_b"
    assert named_tenant([("x-tenant-id", b"acme")]) == "acme"
    for bad in ("Acme", "a b", "_x", "x" * 64, "a{b}", "a:b", "ü"):
        with pytest.raises(InvalidArgument, match="x-tenant-id"):
            named_tenant(md(bad))


def test_without_auth_the_call_names_its_tenant_or_gets_the_default() -> None:
    resolver = TenantResolver()
    assert resolver.resolve(md()) == "default"
    assert resolver.resolve(md("acme")) == "acme"
    assert TenantResolver(TokenTable({})).resolve(md("acme")) == "acme"  # no tokens: auth off


def test_tokens_decide_the_tenants_a_call_may_act_for() -> None:
    resolver = TenantResolver(TokenTable(parse_tokens(
        "admin read,write; one read acme; two read acme,globex")))
    assert resolver.resolve(md(token="admin")) == "default"
    assert resolver.resolve(md("globex", "admin")) == "globex"
    assert resolver.resolve(md(token="one")) == "acme"  # its only tenant, unnamed
    assert resolver.resolve(md("acme", "one")) == "acme"
    assert resolver.resolve(md("globex", "two")) == "globex"
    with pytest.raises(PermissionDenied, match="globex"):
        resolver.resolve(md("globex", "one"))
    with pytest.raises(PermissionDenied):
        resolver.resolve(md("default", "one"))  # the default tenant is a tenant like any other
    with pytest.raises(InvalidArgument, match="several tenants"):
        resolver.resolve(md(token="two"))
    with pytest.raises(PermissionDenied):
        resolver.resolve(md("acme", "unknown"))


def test_the_default_tenant_keeps_the_unprefixed_keys() -> None:
    assert KeySpace("default") == DEFAULT_KEYS
    assert DEFAULT_KEYS.user("42").state == "u:{42}:state" == user_keys("42").state
    assert DEFAULT_KEYS.item("7") == "item:7" and DEFAULT_KEYS.popularity == "pop"
    assert DEFAULT_KEYS.catalog_ids == "catalog:ids"
    assert DEFAULT_KEYS.catalog_changes == "catalog:changes"
    assert DEFAULT_KEYS.channel("42") == "u:{42}:changed"


def test_a_tenant_prefixes_every_key_and_keeps_the_user_slot() -> None:
    acme = KeySpace("acme")
    keys = acme.user("42")
    assert all(k.startswith("t:acme:u:{42}:") for k in keys.all())
    assert {key_slot(k.encode()) for k in keys.all()} == {key_slot(b"u:{42}:state")}
    assert acme.item("7") == "t:acme:item:7" and acme.popularity == "t:acme:pop"
    assert acme.catalog_ids == "t:acme:catalog:ids"
    assert acme.catalog_changes == "t:acme:catalog:changes"
    assert acme.channel("42") == "t:acme:u:{42}:changed"
    assert acme.user_pattern("4*2") == "t:acme:u:\\{4\\*2\\}:*"
    for bad in ("", "Acme", "a:b", "{x}"):
        with pytest.raises(ValueError):
            KeySpace(bad)
