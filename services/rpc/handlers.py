"""A service's gRPC method handlers built from its proto descriptor, with methods whose servicer
returns the response already serialised.

The generated ``add_*Servicer_to_server`` serialises every response on the event loop; a method
named in ``serialized`` is served by another servicer attribute that returns ``bytes`` (made
off the loop, e.g. on the worker thread that ran the request's batch), which gRPC sends as is.
Handlers are registered both as registered methods (grpc matches them in C, before any Python
generic handler) and as a generic handler (for servers without registered methods).
"""

from __future__ import annotations

from typing import Any, Mapping

import grpc
from google.protobuf import symbol_database
from google.protobuf.descriptor import ServiceDescriptor

_KINDS = {
    (False, False): grpc.unary_unary_rpc_method_handler,
    (False, True): grpc.unary_stream_rpc_method_handler,
    (True, False): grpc.stream_unary_rpc_method_handler,
    (True, True): grpc.stream_stream_rpc_method_handler,
}


def method_handlers(service: ServiceDescriptor, servicer: Any,
                    serialized: Mapping[str, str] | None = None) -> dict[str, grpc.RpcMethodHandler]:
    """Method name -> handler for every method of ``service`` on ``servicer``; a method in
    ``serialized`` (method -> servicer attribute) is served by that attribute, whose responses
    are ``bytes``."""
    serialized = serialized or {}
    database = symbol_database.Default()
    handlers = {}
    for method in service.methods:
        request = database.GetSymbol(method.input_type.full_name)
        response = database.GetSymbol(method.output_type.full_name)
        make = _KINDS[(method.client_streaming, method.server_streaming)]
        if method.name in serialized:
            handlers[method.name] = make(getattr(servicer, serialized[method.name]),
                                         request_deserializer=request.FromString, response_serializer=None)
        else:
            handlers[method.name] = make(getattr(servicer, method.name), request_deserializer=request.FromString,
                                         response_serializer=response.SerializeToString)
    return handlers


def add_handlers(server: grpc.aio.Server, service: ServiceDescriptor, handlers: dict[str, grpc.RpcMethodHandler]) -> None:
    """Register ``handlers`` for ``service`` on ``server``, as the generated code does."""
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service.full_name, handlers),))
    if hasattr(server, "add_registered_method_handlers"):
        server.add_registered_method_handlers(service.full_name, handlers)
