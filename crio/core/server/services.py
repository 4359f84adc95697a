"""Builds the RuntimeService and ImageService from their descriptors and the RPC families implemented.

Every RPC of the pinned CRI API is registered: one implemented by a family object (a method named after the
RPC) is served; any other answers UNIMPLEMENTED naming the RPC.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from typing import Any

import grpc
from google.protobuf.descriptor import MethodDescriptor, ServiceDescriptor
from grpc import aio

from crio.core.api import api_pb2
from crio.core.errors import Unimplemented
from crio.core.server.interceptor import wrap_stream, wrap_unary

SERVICES = ("RuntimeService", "ImageService")


def _unimplemented_unary(name: str) -> Any:
    async def behavior(request: Any, context: aio.ServicerContext[Any, Any]) -> Any:
        raise Unimplemented(f"{name} is not implemented by crio yet")

    return behavior


def _unimplemented_stream(name: str) -> Any:
    async def behavior(request: Any, context: aio.ServicerContext[Any, Any]) -> AsyncIterator[Any]:
        raise Unimplemented(f"{name} is not implemented by crio yet")
        yield  # pragma: no cover - makes this an async generator

    return behavior


def _message_class(descriptor: Any) -> Any:
    return getattr(api_pb2, descriptor.name)


def _method_handler(method: MethodDescriptor, families: Iterable[object]) -> grpc.RpcMethodHandler[Any, Any]:
    behavior = next((getattr(f, method.name) for f in families if hasattr(f, method.name)), None)
    request_class = _message_class(method.input_type)
    response_class = _message_class(method.output_type)
    if method.server_streaming:
        return grpc.unary_stream_rpc_method_handler(
            wrap_stream(method.name, behavior or _unimplemented_stream(method.name)),
            request_deserializer=request_class.FromString,
            response_serializer=response_class.SerializeToString,
        )
    return grpc.unary_unary_rpc_method_handler(
        wrap_unary(method.name, behavior or _unimplemented_unary(method.name)),
        request_deserializer=request_class.FromString,
        response_serializer=response_class.SerializeToString,
    )


def generic_handlers(families: Iterable[object]) -> list[grpc.GenericRpcHandler[Any, Any]]:
    """Return one generic handler per CRI service, serving ``families``' methods named after RPCs."""
    families = list(families)
    handlers = []
    for service_name in SERVICES:
        service: ServiceDescriptor = api_pb2.DESCRIPTOR.services_by_name[service_name]
        methods = {m.name: _method_handler(m, families) for m in service.methods}
        handlers.append(grpc.method_handlers_generic_handler(service.full_name, methods))
    return handlers


def implemented_rpcs(families: Iterable[object]) -> list[str]:
    """Names of the RPCs that ``families`` implement (for logs and tests)."""
    families = list(families)
    names = []
    for service_name in SERVICES:
        for method in api_pb2.DESCRIPTOR.services_by_name[service_name].methods:
            if any(hasattr(f, method.name) for f in families):
                names.append(method.name)
    return names
