"""RunPodSandbox, StopPodSandbox, RemovePodSandbox, PodSandboxStatus, ListPodSandbox on the wire."""

from __future__ import annotations

import json
from typing import Any

from google.protobuf import json_format
from grpc import aio

from crio.core.api import api_pb2 as pb
from crio.core.crirecords import PodSandboxConfig
from crio.core.errors import InvalidArgument
from crio.core.sandbox.manager import SandboxManager
from crio.core.sandbox.model import READY, Sandbox

_STATES: dict[str, pb.PodSandboxState] = {READY: pb.SANDBOX_READY}


def _metadata(sandbox: Sandbox) -> pb.PodSandboxMetadata:
    meta = sandbox.config.metadata
    return pb.PodSandboxMetadata(name=meta.name, uid=meta.uid, namespace=meta.namespace, attempt=meta.attempt)


def _state(sandbox: Sandbox) -> pb.PodSandboxState:
    return _STATES.get(sandbox.state, pb.SANDBOX_NOTREADY)


class PodRPCs:
    """The pod sandbox RPC family."""

    def __init__(self, pods: SandboxManager) -> None:
        self.pods = pods

    async def RunPodSandbox(
        self, request: pb.RunPodSandboxRequest, context: aio.ServicerContext[Any, Any]
    ) -> pb.RunPodSandboxResponse:
        """Create and start a pod sandbox."""
        if not request.HasField("config"):
            raise InvalidArgument("RunPodSandbox: config is required")
        config = PodSandboxConfig.from_message(request.config)
        pod_id = await self.pods.run(config, request.runtime_handler)
        return pb.RunPodSandboxResponse(pod_sandbox_id=pod_id)

    async def StopPodSandbox(
        self, request: pb.StopPodSandboxRequest, context: aio.ServicerContext[Any, Any]
    ) -> pb.StopPodSandboxResponse:
        """Stop a pod; an unknown or stopped pod is a success."""
        if not request.pod_sandbox_id:
            raise InvalidArgument("StopPodSandbox: pod_sandbox_id is required")
        await self.pods.stop(request.pod_sandbox_id)
        return pb.StopPodSandboxResponse()

    async def RemovePodSandbox(
        self, request: pb.RemovePodSandboxRequest, context: aio.ServicerContext[Any, Any]
    ) -> pb.RemovePodSandboxResponse:
        """Remove a pod (stopping it first); an unknown pod is a success."""
        if not request.pod_sandbox_id:
            raise InvalidArgument("RemovePodSandbox: pod_sandbox_id is required")
        await self.pods.remove(request.pod_sandbox_id)
        return pb.RemovePodSandboxResponse()

    async def PodSandboxStatus(
        self, request: pb.PodSandboxStatusRequest, context: aio.ServicerContext[Any, Any]
    ) -> pb.PodSandboxStatusResponse:
        """Status of one pod; verbose adds the infra pid and the OCI spec."""
        sandbox, info = await self.pods.status(request.pod_sandbox_id)
        options = sandbox.config.namespace_options.to_dict()
        status = pb.PodSandboxStatus(
            id=sandbox.id,
            metadata=_metadata(sandbox),
            state=_state(sandbox),
            created_at=sandbox.created_at,
            labels=sandbox.config.labels,
            annotations=sandbox.config.annotations,
            runtime_handler=sandbox.runtime_handler,
            linux=pb.LinuxPodSandboxStatus(
                namespaces=pb.Namespace(options=json_format.ParseDict(options, pb.NamespaceOption()))
            ),
        )
        if sandbox.ips and sandbox.state == READY:
            status.network.ip = sandbox.ips[0]
            status.network.additional_ips.extend(pb.PodIP(ip=ip) for ip in sandbox.ips[1:])
        response = pb.PodSandboxStatusResponse(status=status)
        if request.verbose:
            response.info["info"] = json.dumps(info, sort_keys=True)
        return response

    async def ListPodSandbox(
        self, request: pb.ListPodSandboxRequest, context: aio.ServicerContext[Any, Any]
    ) -> pb.ListPodSandboxResponse:
        """Pods matching the filter (ID or unique prefix, state, label selector)."""
        wanted_state = None
        id_prefix = ""
        labels: dict[str, str] = {}
        if request.HasField("filter"):
            id_prefix = request.filter.id
            labels = dict(request.filter.label_selector)
            if request.filter.HasField("state"):
                wanted_state = READY if request.filter.state.state == pb.SANDBOX_READY else "notready"
        items = [
            pb.PodSandbox(
                id=s.id,
                metadata=_metadata(s),
                state=_state(s),
                created_at=s.created_at,
                labels=s.config.labels,
                annotations=s.config.annotations,
                runtime_handler=s.runtime_handler,
            )
            for s in self.pods.list(id_prefix, wanted_state, labels)
        ]
        return pb.ListPodSandboxResponse(items=items)
