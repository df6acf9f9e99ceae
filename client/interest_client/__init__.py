"""Python client for interest.v1.InterestService: stubs plus an ergonomic wrapper and CLI."""

from interest_client.client import (
    EventLike,
    InterestClient,
    InterestError,
    ItemLike,
    make_event,
    make_item,
)

__all__ = [
    "EventLike",
    "InterestClient",
    "InterestError",
    "ItemLike",
    "make_event",
    "make_item",
]
