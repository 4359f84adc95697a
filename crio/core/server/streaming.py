"""Streaming RPCs on the wire: Exec, Attach and PortForward answer with a URL of the streaming server."""

from __future__ import annotations

from typing import Any

from grpc import aio

from crio.core.api import api_pb2 as pb
from crio.core.errors import InvalidArgument
from crio.core.streaming.service import StreamingService


class StreamingRPCs:
    """The streaming RPC family."""

    def __init__(self, streaming: StreamingService) -> None:
        self.streaming = streaming

    async def Exec(self, request: pb.ExecRequest, context: aio.ServicerContext[Any, Any]) -> pb.ExecResponse:
        """Prepare a command to run in a running container; the URL runs it (SPDY or WebSocket)."""
        if not request.container_id:
            raise InvalidArgument("Exec: container_id is required")
        url = self.streaming.prepare_exec(
            request.container_id,
            list(request.cmd),
            request.tty,
            request.stdin,
            request.stdout,
            request.stderr,
        )
        return pb.ExecResponse(url=url)

    async def Attach(
        self, request: pb.AttachRequest, context: aio.ServicerContext[Any, Any]
    ) -> pb.AttachResponse:
        """Prepare an attach to a running container's own stdio."""
        if not request.container_id:
            raise InvalidArgument("Attach: container_id is required")
        url = self.streaming.prepare_attach(
            request.container_id, request.tty, request.stdin, request.stdout, request.stderr
        )
        return pb.AttachResponse(url=url)

    async def PortForward(
        self, request: pb.PortForwardRequest, context: aio.ServicerContext[Any, Any]
    ) -> pb.PortForwardResponse:
        """Prepare port forwarding into a ready pod's network namespace."""
        if not request.pod_sandbox_id:
            raise InvalidArgument("PortForward: pod_sandbox_id is required")
        url = self.streaming.prepare_port_forward(request.pod_sandbox_id, list(request.port))
        return pb.PortForwardResponse(url=url)
