"""Registers the servicer with request parsing that turns undecodable bytes into INVALID_ARGUMENT.

grpc's generated registration parses with `Message.FromString`; a parse failure (invalid UTF-8 in
a string field, truncated bytes) then ends the call as INTERNAL "Exception deserializing request!",
which tells the caller nothing. Here a failed parse yields an `Undecodable` marker instead, and
the `rpc` wrapper in grpc_errors.py answers it with INVALID_ARGUMENT naming the message type.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import grpc
from google.protobuf.message import DecodeError, Message
from interest.v1 import interest_pb2

SERVICE = interest_pb2.DESCRIPTOR.services_by_name["InterestService"]


@dataclass(frozen=True)
class Undecodable:
    """Stands in for a request message whose bytes did not parse."""

    type_name: str

    def describe(self) -> str:
        """What the caller is told."""
        return (f"the request is not a valid {self.type_name} message (malformed bytes or "
                "invalid UTF-8 in a string field)")


def _parser(message_type: type[Message]) -> Callable[[bytes], Message | Undecodable]:
    name = message_type.DESCRIPTOR.full_name

    def parse(data: bytes) -> Message | Undecodable:
        try:
            return message_type.FromString(data)
        except DecodeError:
            return Undecodable(name)
    return parse


def add_servicer(servicer: object, server: grpc.Server) -> None:
    """Register every method of interest.v1.InterestService on the server."""
    handlers = {}
    for method in SERVICE.methods:
        request_type = getattr(interest_pb2, method.input_type.name)
        response_type = getattr(interest_pb2, method.output_type.name)
        kind = {(False, False): grpc.unary_unary_rpc_method_handler,
                (False, True): grpc.unary_stream_rpc_method_handler,
                (True, False): grpc.stream_unary_rpc_method_handler,
                (True, True): grpc.stream_stream_rpc_method_handler}[
            (method.client_streaming, method.server_streaming)]
        handlers[method.name] = kind(getattr(servicer, method.name),
                                     request_deserializer=_parser(request_type),
                                     response_serializer=response_type.SerializeToString)
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(SERVICE.full_name, handlers),))
    server.add_registered_method_handlers(SERVICE.full_name, handlers)
