"""Container RPCs on the wire: create, start, stop, remove, status, list, update, reopen log, ExecSync."""

from __future__ import annotations

import json
from typing import Any, cast

from google.protobuf import json_format
from grpc import aio

from crio.core.api import api_pb2 as pb
from crio.core.containers import imagevolumes
from crio.core.containers.manager import ContainerManager
from crio.core.containers.model import CREATED, EXITED, REMOVING, RUNNING, Container
from crio.core.crirecords import ContainerConfig, LinuxContainerResources
from crio.core.errors import InvalidArgument

_STATES: dict[str, pb.ContainerState] = {
    CREATED: pb.CONTAINER_CREATED,
    RUNNING: pb.CONTAINER_RUNNING,
    EXITED: pb.CONTAINER_EXITED,
}
_NAMES = {value: key for key, value in _STATES.items()}
_STATES[REMOVING] = pb.CONTAINER_EXITED  # being removed: stopped or being killed
# ExecSync output cap per stream (CVE-2022-1708).
EXEC_SYNC_OUTPUT_LIMIT = 16 * 1024 * 1024


def _state(container: Container) -> pb.ContainerState:
    return _STATES.get(container.state, pb.CONTAINER_UNKNOWN)


def _metadata(container: Container) -> pb.ContainerMetadata:
    meta = container.config.metadata
    return pb.ContainerMetadata(name=meta.name, attempt=meta.attempt)


def _mounts(container: Container) -> list[pb.Mount]:
    """The container's CRI mounts as requested; an image volume's ``image.image_ref`` is the ID of the image
    it mounted (what PullImage returned as image_ref for it)."""
    refs = imagevolumes.image_refs(container.image_volumes)
    result = []
    for index, requested in enumerate(container.config.mounts):
        mount = json_format.ParseDict(requested.to_dict(), pb.Mount())
        if index in refs and mount.image.image:
            mount.image.image_ref = refs[index]
        result.append(mount)
    return result


def _stop_signal(name: str) -> pb.Signal:
    text = name.upper()
    key = "SIGNAL_" + (text if text.startswith("SIG") else f"SIG{text}")
    names = set(pb.Signal.keys())
    return cast(pb.Signal, pb.Signal.Value(key)) if key in names else pb.SIGNAL_RUNTIME_DEFAULT


class ContainerRPCs:
    """The container RPC family."""

    def __init__(self, containers: ContainerManager) -> None:
        self.containers = containers

    async def CreateContainer(
        self, request: pb.CreateContainerRequest, context: aio.ServicerContext[Any, Any]
    ) -> pb.CreateContainerResponse:
        """Create a container in a pod."""
        if not request.pod_sandbox_id:
            raise InvalidArgument("CreateContainer: pod_sandbox_id is required")
        if not request.HasField("config"):
            raise InvalidArgument("CreateContainer: config is required")
        config = ContainerConfig.from_message(request.config)
        container_id = await self.containers.create(request.pod_sandbox_id, config)
        return pb.CreateContainerResponse(container_id=container_id)

    async def StartContainer(
        self, request: pb.StartContainerRequest, context: aio.ServicerContext[Any, Any]
    ) -> pb.StartContainerResponse:
        """Start a created container."""
        await self.containers.start(request.container_id)
        return pb.StartContainerResponse()

    async def StopContainer(
        self, request: pb.StopContainerRequest, context: aio.ServicerContext[Any, Any]
    ) -> pb.StopContainerResponse:
        """Stop a container within the timeout; unknown or stopped containers are fine."""
        if not request.container_id:
            raise InvalidArgument("StopContainer: container_id is required")
        await self.containers.stop(request.container_id, float(request.timeout))
        return pb.StopContainerResponse()

    async def RemoveContainer(
        self, request: pb.RemoveContainerRequest, context: aio.ServicerContext[Any, Any]
    ) -> pb.RemoveContainerResponse:
        """Remove a container (killing it if needed); unknown containers are fine."""
        if not request.container_id:
            raise InvalidArgument("RemoveContainer: container_id is required")
        await self.containers.remove(request.container_id)
        return pb.RemoveContainerResponse()

    async def ContainerStatus(
        self, request: pb.ContainerStatusRequest, context: aio.ServicerContext[Any, Any]
    ) -> pb.ContainerStatusResponse:
        """The status of one container; verbose adds its pid and OCI spec."""
        container, info = await self.containers.status(request.container_id)
        user = container.user
        status = pb.ContainerStatus(
            id=container.id,
            metadata=_metadata(container),
            state=_state(container),
            created_at=container.created_at,
            started_at=container.started_at,
            finished_at=container.finished_at,
            exit_code=container.exit_code,
            image=pb.ImageSpec(image=container.image_name),
            image_ref=container.image_id,
            image_id=container.image_id,
            reason=container.reason,
            message=container.message,
            labels=container.config.labels,
            annotations=container.config.annotations,
            mounts=_mounts(container),
            log_path=container.log_path,
            user=pb.ContainerUser(
                linux=pb.LinuxContainerUser(
                    uid=int(user.get("uid", 0)),
                    gid=int(user.get("gid", 0)),
                    supplemental_groups=[int(g) for g in user.get("supplemental_groups", [])],
                )
            ),
            stop_signal=_stop_signal(container.stop_signal)
            if container.stop_signal
            else pb.SIGNAL_RUNTIME_DEFAULT,
        )
        resources = container.config.resources
        if resources is not None and resources != LinuxContainerResources():
            linux = json_format.ParseDict(resources.to_dict(), pb.LinuxContainerResources())
            status.resources.linux.CopyFrom(linux)
        response = pb.ContainerStatusResponse(status=status)
        if request.verbose:
            response.info["info"] = json.dumps(info, sort_keys=True)
        return response

    async def ListContainers(
        self, request: pb.ListContainersRequest, context: aio.ServicerContext[Any, Any]
    ) -> pb.ListContainersResponse:
        """Containers matching the filter (ID prefix, state, pod, label selector)."""
        flt = request.filter if request.HasField("filter") else pb.ContainerFilter()
        state = _NAMES.get(flt.state.state, "unknown") if flt.HasField("state") else None
        found = self.containers.list(flt.id, state, flt.pod_sandbox_id, dict(flt.label_selector))
        return pb.ListContainersResponse(
            containers=[
                pb.Container(
                    id=c.id,
                    pod_sandbox_id=c.pod_id,
                    metadata=_metadata(c),
                    image=pb.ImageSpec(image=c.image_name),
                    image_ref=c.image_id,
                    image_id=c.image_id,
                    state=_state(c),
                    created_at=c.created_at,
                    labels=c.config.labels,
                    annotations=c.config.annotations,
                )
                for c in found
            ]
        )

    async def UpdateContainerResources(
        self, request: pb.UpdateContainerResourcesRequest, context: aio.ServicerContext[Any, Any]
    ) -> pb.UpdateContainerResourcesResponse:
        """Apply new Linux resources to a container, live."""
        resources = LinuxContainerResources.from_message(request.linux)
        await self.containers.update_resources(request.container_id, resources)
        return pb.UpdateContainerResourcesResponse()

    async def ReopenContainerLog(
        self, request: pb.ReopenContainerLogRequest, context: aio.ServicerContext[Any, Any]
    ) -> pb.ReopenContainerLogResponse:
        """Reopen the container's log file (log rotation)."""
        await self.containers.reopen_log(request.container_id)
        return pb.ReopenContainerLogResponse()

    async def ExecSync(
        self, request: pb.ExecSyncRequest, context: aio.ServicerContext[Any, Any]
    ) -> pb.ExecSyncResponse:
        """Run a command in a running container and return its output and exit code."""
        if not request.cmd:
            raise InvalidArgument("ExecSync: cmd is empty")
        result = await self.containers.exec_sync(
            request.container_id, list(request.cmd), float(request.timeout), EXEC_SYNC_OUTPUT_LIMIT
        )
        return pb.ExecSyncResponse(stdout=result.stdout, stderr=result.stderr, exit_code=result.exit_code)
