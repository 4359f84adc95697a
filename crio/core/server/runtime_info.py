"""Version, Status and RuntimeConfig: the wire side of :mod:`crio.core.runtime_info`."""

from __future__ import annotations

from typing import Any

from grpc import aio

from crio.core.api import api_pb2 as pb
from crio.core.runtime_info import RuntimeInfo

# The kubelet runtime API version every CRI runtime reports in VersionResponse.version.
KUBELET_API_VERSION = "0.1.0"


class RuntimeInfoRPCs:
    """The runtime-info RPC family."""

    def __init__(self, info: RuntimeInfo) -> None:
        self.info = info

    async def Version(
        self, request: pb.VersionRequest, context: aio.ServicerContext[Any, Any]
    ) -> pb.VersionResponse:
        """Return the runtime's name and versions (``version`` is the kubelet's API version, echoed)."""
        return pb.VersionResponse(version=KUBELET_API_VERSION, **self.info.version())

    async def Status(
        self, request: pb.StatusRequest, context: aio.ServicerContext[Any, Any]
    ) -> pb.StatusResponse:
        """Return RuntimeReady/NetworkReady, the runtime handlers with their features and verbose info."""
        status = await self.info.status(request.verbose)
        return pb.StatusResponse(
            status=pb.RuntimeStatus(
                conditions=[
                    pb.RuntimeCondition(type=c.type, status=c.status, reason=c.reason, message=c.message)
                    for c in status.conditions
                ]
            ),
            runtime_handlers=[
                pb.RuntimeHandler(
                    name=h.name,
                    features=pb.RuntimeHandlerFeatures(
                        recursive_read_only_mounts=h.features.recursive_read_only_mounts,
                        user_namespaces=h.features.user_namespaces,
                    ),
                )
                for h in status.handlers
            ],
            # crio applies SupplementalGroupsPolicy Merge and Strict (crio.core.spec.user).
            features=pb.RuntimeFeatures(supplemental_groups_policy=True),
            info=status.info,
        )

    async def RuntimeConfig(
        self, request: pb.RuntimeConfigRequest, context: aio.ServicerContext[Any, Any]
    ) -> pb.RuntimeConfigResponse:
        """Return the cgroup driver the kubelet must use (cgroupfs)."""
        return pb.RuntimeConfigResponse(linux=pb.LinuxRuntimeConfiguration(cgroup_driver=pb.CGROUPFS))
