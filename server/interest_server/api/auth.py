"""Bearer-token authentication with read/write scopes (a gRPC server interceptor), and the
tenants each token may act for."""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from interest.v1 import interest_pb2

from interest_server.config import Settings, is_loopback
from interest_server.state.keys import TENANT_PATTERN

log = logging.getLogger(__name__)

READ = "read"
WRITE = "write"
SCOPES = frozenset({READ, WRITE})

_SERVICE = interest_pb2.DESCRIPTOR.services_by_name["InterestService"]
_READ_METHODS = frozenset({"Recommend", "GetUserState", "WatchRecommendations"})
_WRITE_METHODS = frozenset({"StreamEvents", "IngestEvents", "EncodeInterest", "UpsertItems",
                            "DeleteItems", "DeleteUser", "SetAttributeSynonyms"})
METHOD_SCOPES: dict[str, str] = {
    f"/{_SERVICE.full_name}/{m.name}": READ if m.name in _READ_METHODS else WRITE
    for m in _SERVICE.methods
}
"""Full method path -> the scope it needs. Every InterestService method is listed; a method
added to the proto later, in neither list above, needs `write` (deny by default)."""
_GUARDED_PREFIX = f"/{_SERVICE.full_name}/"

UNAUTHENTICATED_MESSAGE = "missing or invalid bearer token (metadata 'authorization: Bearer ...')"


@dataclass(frozen=True)
class Grant:
    """What one token may do: its scopes, and the tenants it may act for (None: every one)."""

    scopes: frozenset[str]
    tenants: frozenset[str] | None = None

    def __or__(self, other: Grant) -> Grant:
        """The union of two grants of one token (it may be listed more than once)."""
        tenants = None if self.tenants is None or other.tenants is None else \
            self.tenants | other.tenants
        return Grant(self.scopes | other.scopes, tenants)


def parse_tokens(text: str, source: str = "tokens") -> dict[bytes, Grant]:
    """Parse `TOKEN SCOPE[,SCOPE] [TENANT[,TENANT]]` entries, one per line or separated by ';'.

    Without the tenant list (or with `*`) the token acts for every tenant. Blank lines and lines
    starting with '#' are skipped. Returns sha256(token) -> grant, so tokens are compared as
    fixed-length digests and never kept in the clear.
    """
    tokens: dict[bytes, Grant] = {}
    entries = [e.strip() for line in text.splitlines() for e in line.split(";")]
    for n, entry in enumerate(entries, 1):
        if not entry or entry.startswith("#"):
            continue
        parts = entry.split()
        if len(parts) not in (2, 3):
            raise ValueError(f"{source}: entry {n} must be 'TOKEN SCOPE[,SCOPE] "
                             "[TENANT[,TENANT]]'")
        token, scope_list = parts[:2]
        scopes = frozenset(s.strip() for s in scope_list.split(",") if s.strip())
        unknown = scopes - SCOPES
        if not scopes or unknown:
            raise ValueError(f"{source}: entry {n} has unknown scope(s) {sorted(unknown)}; "
                             f"known: {sorted(SCOPES)}")
        tenants = None
        if len(parts) == 3 and parts[2] != "*":
            tenants = frozenset(t.strip() for t in parts[2].split(",") if t.strip())
            bad = sorted(t for t in tenants if not TENANT_PATTERN.fullmatch(t))
            if not tenants or bad:
                raise ValueError(f"{source}: entry {n} has invalid tenant name(s) {bad}: "
                                 "1-63 of a-z, 0-9, '_', '-', starting with a letter or digit")
        digest = _digest(token)
        grant = Grant(scopes, tenants)
        tokens[digest] = tokens[digest] | grant if digest in tokens else grant
    return tokens


def load_tokens(settings: Settings) -> dict[bytes, Grant]:
    """Tokens from settings.auth_token_file and settings.auth_tokens (both may be given)."""
    tokens: dict[bytes, Grant] = {}
    sources = []
    if settings.auth_token_file:
        path = Path(settings.auth_token_file)
        sources.append((path.read_text(encoding="utf-8"), str(path)))
    if settings.auth_tokens:
        sources.append((settings.auth_tokens, "auth_tokens"))
    for text, source in sources:
        for digest, grant in parse_tokens(text, source).items():
            tokens[digest] = tokens[digest] | grant if digest in tokens else grant
    return tokens


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8")).digest()


def bearer(metadata: Any) -> str | None:
    """The bearer token of a call's metadata, or None."""
    for key, value in metadata or ():
        if key == "authorization":
            if isinstance(value, bytes):
                value = value.decode("utf-8", "replace")
            scheme, _, token = value.strip().partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
            return None
    return None


class TokenTable:
    """Known tokens (as digests) and their grants."""

    def __init__(self, tokens: Mapping[bytes, Grant]) -> None:
        self._tokens = list(tokens.items())

    def __bool__(self) -> bool:
        return bool(self._tokens)

    def grant_of(self, token: str | None) -> Grant | None:
        """The token's grant, or None for an unknown token; compares against every token in
        constant time so timing reveals neither a token nor which one matched."""
        if token is None:
            return None
        presented = _digest(token)
        found: Grant | None = None
        for digest, grant in self._tokens:
            if hmac.compare_digest(presented, digest):
                found = grant
        return found


class AuthInterceptor(grpc.ServerInterceptor):
    """Admits an InterestService call only with a known bearer token holding the method's scope.

    UNAUTHENTICATED for a missing or unknown token, PERMISSION_DENIED for a token without the
    scope. Other services (health checking, reflection) stay open.
    """

    def __init__(self, tokens: Mapping[bytes, Grant]) -> None:
        if not tokens:
            raise ValueError("AuthInterceptor needs at least one token")
        self.tokens = TokenTable(tokens)

    def scopes_of(self, token: str | None) -> frozenset[str] | None:
        """The token's scopes, or None for an unknown token."""
        grant = self.tokens.grant_of(token)
        return None if grant is None else grant.scopes

    def intercept_service(self, continuation: Callable[[grpc.HandlerCallDetails], Any],
                          handler_call_details: grpc.HandlerCallDetails) -> Any:
        method = handler_call_details.method
        if not method.startswith(_GUARDED_PREFIX):
            return continuation(handler_call_details)
        needed = METHOD_SCOPES.get(method, WRITE)
        scopes = self.scopes_of(bearer(handler_call_details.invocation_metadata))
        if scopes is None:
            log.info("%s: unauthenticated call refused", method)
            return refusal(continuation(handler_call_details),
                            grpc.StatusCode.UNAUTHENTICATED, UNAUTHENTICATED_MESSAGE)
        if needed not in scopes:
            log.info("%s: token without scope %r refused", method, needed)
            return refusal(continuation(handler_call_details), grpc.StatusCode.PERMISSION_DENIED,
                            f"the token lacks the '{needed}' scope this method needs")
        return continuation(handler_call_details)


def refusal(handler: grpc.RpcMethodHandler | None, code: grpc.StatusCode,
             message: str) -> grpc.RpcMethodHandler:
    """A handler of the same shape as the real one that ends the call with `code`, reading
    nothing of a request stream and never deserializing a request."""

    def abort(_request: Any, context: grpc.ServicerContext) -> None:
        context.abort(code, message)

    def abort_stream(_request: Any, context: grpc.ServicerContext) -> Any:
        context.abort(code, message)
        yield  # pragma: no cover - makes this a generator, as response streams need

    request_streaming = bool(handler and handler.request_streaming)
    response_streaming = bool(handler and handler.response_streaming)
    if request_streaming and response_streaming:
        return grpc.stream_stream_rpc_method_handler(abort_stream)
    if request_streaming:
        return grpc.stream_unary_rpc_method_handler(abort)
    if response_streaming:
        return grpc.unary_stream_rpc_method_handler(abort_stream)
    return grpc.unary_unary_rpc_method_handler(abort)


def interceptors(settings: Settings) -> list[grpc.ServerInterceptor]:
    """The interceptors for these settings: none when no token is configured (auth off)."""
    tokens = load_tokens(settings)
    if not tokens:
        if not is_loopback(settings.host) and not settings.tls_client_ca_file:
            log.warning("no auth tokens configured: any caller reaching %s may read and write "
                        "(set --auth-token-file or INTEREST_AUTH_TOKENS)", settings.host)
        return []
    log.info("bearer-token auth on: %d token(s)", len(tokens))
    return [AuthInterceptor(tokens)]


__all__ = ["AuthInterceptor", "Grant", "METHOD_SCOPES", "READ", "TokenTable", "WRITE", "bearer",
           "interceptors", "load_tokens", "parse_tokens", "refusal"]
