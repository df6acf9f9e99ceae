"""The closed set of domain errors; grpc_errors.py maps each to one gRPC status code."""

from __future__ import annotations


class InterestError(Exception):
    """Base of every error the domain code raises on purpose."""


class InvalidArgument(InterestError):
    """The request is malformed; the message names the field and the limit."""


class NotFound(InterestError):
    """A named entity does not exist."""


class FailedPrecondition(InterestError):
    """The system is not in a state that allows the call (e.g. empty catalog)."""


class PermissionDenied(InterestError):
    """The caller is authenticated but may not do this (e.g. a token scoped to other tenants)."""


class ResourceExhausted(InterestError):
    """A capacity limit was hit; retry later or send less."""


class Unavailable(InterestError):
    """A dependency (Redis) is unreachable or timed out, or the server is briefly unable to
    answer (still starting, its catalog index compacted under a request); safe to retry."""


class Aborted(InterestError):
    """Concurrent writers kept conflicting; safe to retry."""


class Cancelled(InterestError):
    """The caller cancelled or its deadline passed before a write; nothing was written."""
