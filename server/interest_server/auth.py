"""Bearer-token authentication with read/write scopes, as a gRPC server interceptor."""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import grpc
from interest.v1 import interest_pb2

from .config import Settings

log = logging.getLogger(__name__)

READ = "read"
WRITE = "write"
SCOPES = frozenset({READ, WRITE})

_SERVICE = interest_pb2.DESCRIPTOR.services_by_name["InterestService"]
_READ_METHODS = frozenset({"Recommend", "GetUserState", "WatchRecommendations"})
METHOD_SCOPES: dict[str, str] = {
    f"/{_SERVICE.full_name}/{m.name}": READ if m.name in _READ_METHODS else WRITE
    for m in _SERVICE.methods
}
"""Full method path -> the scope it needs. Every InterestService method is listed; a method
added to the proto later needs `write` until it is listed here (deny by default)."""
_GUARDED_PREFIX = f"/{_SERVICE.full_name}/"

UNAUTHENTICATED_MESSAGE = "missing or invalid bearer token (metadata 'authorization: Bearer ...')"


def parse_tokens(text: str, source: str = "tokens") -> dict[bytes, frozenset[str]]:
    """Parse `token scope[,scope]` entries, one per line or separated by ';'.

    Blank lines and lines starting with '#' are skipped. Returns sha256(token) -> scopes, so
    tokens are compared as fixed-length digests and never kept in the clear.
    """
    tokens: dict[bytes, frozenset[str]] = {}
    entries = [e.strip() for line in text.splitlines() for e in line.split(";")]
    for n, entry in enumerate(entries, 1):
        if not entry or entry.startswith("#"):
            continue
        parts = entry.split()
        if len(parts) != 2:
            raise ValueError(f"{source}: entry {n} must be 'TOKEN SCOPE[,SCOPE]'")
        token, scope_list = parts
        scopes = frozenset(s.strip() for s in scope_list.split(",") if s.strip())
        unknown = scopes - SCOPES
        if not scopes or unknown:
            raise ValueError(f"{source}: entry {n} has unknown scope(s) {sorted(unknown)}; "
                             f"known: {sorted(SCOPES)}")
        digest = _digest(token)
        tokens[digest] = tokens.get(digest, frozenset()) | scopes
    return tokens


def load_tokens(settings: Settings) -> dict[bytes, frozenset[str]]:
    """Tokens from settings.auth_token_file and settings.auth_tokens (both may be given)."""
    tokens: dict[bytes, frozenset[str]] = {}
    sources = []
    if settings.auth_token_file:
        path = Path(settings.auth_token_file)
        sources.append((path.read_text(encoding="utf-8"), str(path)))
    if settings.auth_tokens:
        sources.append((settings.auth_tokens, "auth_tokens"))
    for text, source in sources:
        for digest, scopes in parse_tokens(text, source).items():
            tokens[digest] = tokens.get(digest, frozenset()) | scopes
    return tokens


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8")).digest()


def _bearer(metadata: Any) -> str | None:
    for key, value in metadata or ():
        if key == "authorization":
            if isinstance(value, bytes):
                value = value.decode("utf-8", "replace")
            scheme, _, token = value.strip().partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
            return None
    return None


class AuthInterceptor(grpc.ServerInterceptor):
    """Admits an InterestService call only with a known bearer token holding the method's scope.

    UNAUTHENTICATED for a missing or unknown token, PERMISSION_DENIED for a token without the
    scope. Other services (health checking, reflection) stay open.
    """

    def __init__(self, tokens: Mapping[bytes, frozenset[str]]) -> None:
        if not tokens:
            raise ValueError("AuthInterceptor needs at least one token")
        self._tokens = list(tokens.items())

    def scopes_of(self, token: str | None) -> frozenset[str] | None:
        """The token's scopes, or None for an unknown token; compares against every token in
        constant time so timing reveals neither a token nor which one matched."""
        if token is None:
            return None
        presented = _digest(token)
        found: frozenset[str] | None = None
        for digest, scopes in self._tokens:
            if hmac.compare_digest(presented, digest):
                found = scopes
        return found

    def intercept_service(self, continuation: Callable[[grpc.HandlerCallDetails], Any],
                          handler_call_details: grpc.HandlerCallDetails) -> Any:
        method = handler_call_details.method
        if not method.startswith(_GUARDED_PREFIX):
            return continuation(handler_call_details)
        needed = METHOD_SCOPES.get(method, WRITE)
        scopes = self.scopes_of(_bearer(handler_call_details.invocation_metadata))
        if scopes is None:
            log.info("%s: unauthenticated call refused", method)
            return _refusal(continuation(handler_call_details),
                            grpc.StatusCode.UNAUTHENTICATED, UNAUTHENTICATED_MESSAGE)
        if needed not in scopes:
            log.info("%s: token without scope %r refused", method, needed)
            return _refusal(continuation(handler_call_details), grpc.StatusCode.PERMISSION_DENIED,
                            f"the token lacks the '{needed}' scope this method needs")
        return continuation(handler_call_details)


def _refusal(handler: grpc.RpcMethodHandler | None, code: grpc.StatusCode,
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
        if settings.host not in ("127.0.0.1", "::1", "localhost"):
            log.warning("no auth tokens configured: any caller reaching %s may read and write "
                        "(set --auth-token-file or INTEREST_AUTH_TOKENS)", settings.host)
        return []
    log.info("bearer-token auth on: %d token(s)", len(tokens))
    return [AuthInterceptor(tokens)]


__all__ = ["AuthInterceptor", "METHOD_SCOPES", "READ", "WRITE", "interceptors", "load_tokens",
           "parse_tokens"]
