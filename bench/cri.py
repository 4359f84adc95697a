"""CRI pod and container calls as the lifecycle and memory benchmarks make them, for any runtime.v1 server.

The configs have the shape the kubelet sends (unique metadata per pod, a cgroup parent, a log directory the
client creates first, as the kubelet does), without port mappings. Every call takes a :class:`CriClient`
(bench.common), so crio and containerd are driven by exactly the same code.
"""

from __future__ import annotations

import os
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import grpc

from bench.common import CriClient
from crio.core.api import api_pb2 as pb

NAMESPACE = "crio-bench"
BUSYBOX = "registry.k8s.io/e2e-test-images/busybox:1.29-2"
PAUSE = "registry.k8s.io/pause:3.9"
CONTAINER_NAME = "busybox"
RPC_TIMEOUT = 240.0


def pod_config(name: str, cgroup_parent: str, log_root: Path | None = None) -> pb.PodSandboxConfig:
    """A pod named ``name`` (fresh uid), in ``cgroup_parent``, sharing nothing with the node.

    With ``log_root``, the pod's log directory is ``log_root/NAMESPACE_NAME_UID`` (created here, as the
    kubelet creates /var/log/pods/... before RunPodSandbox).
    """
    uid = uuid.uuid4().hex
    config = pb.PodSandboxConfig(
        metadata=pb.PodSandboxMetadata(name=name, namespace=NAMESPACE, uid=uid, attempt=0),
        hostname=name,
        labels={"app": "crio-bench", "io.kubernetes.pod.name": name},
        annotations={"bench": "lifecycle"},
        linux=pb.LinuxPodSandboxConfig(
            cgroup_parent=cgroup_parent,
            security_context=pb.LinuxSandboxSecurityContext(
                namespace_options=pb.NamespaceOption(network=pb.POD, pid=pb.CONTAINER, ipc=pb.POD)
            ),
        ),
    )
    if log_root is not None:
        log_dir = log_root / f"{NAMESPACE}_{name}_{uid}"
        os.makedirs(log_dir / CONTAINER_NAME, exist_ok=True)  # the kubelet makes the container's one too
        config.log_directory = str(log_dir)
    return config


def container_config(
    image: str = BUSYBOX, command: tuple[str, ...] = ("sleep", "3600")
) -> pb.ContainerConfig:
    """One busybox container running ``command``, logging to ``CONTAINER_NAME/0.log`` in the pod's log dir."""
    return pb.ContainerConfig(
        metadata=pb.ContainerMetadata(name=CONTAINER_NAME, attempt=0),
        image=pb.ImageSpec(image=image),
        command=list(command),
        log_path=f"{CONTAINER_NAME}/0.log",
        labels={"app": "crio-bench"},
        linux=pb.LinuxContainerConfig(
            security_context=pb.LinuxContainerSecurityContext(
                namespace_options=pb.NamespaceOption(network=pb.POD, pid=pb.CONTAINER, ipc=pb.POD)
            ),
        ),
    )


@dataclass
class Timings:
    """Seconds spent in each RPC of one cycle (keys are RPC names), in call order."""

    rpcs: dict[str, float] = field(default_factory=dict)

    def add(self, rpc: str, seconds: float) -> None:
        """Record one call."""
        self.rpcs[rpc] = self.rpcs.get(rpc, 0.0) + seconds

    def total(self, *rpcs: str) -> float:
        """The sum over ``rpcs`` (all when none is named)."""
        return sum(v for k, v in self.rpcs.items() if not rpcs or k in rpcs)


def _timed(timings: Timings | None, rpc: str, started: float) -> None:
    if timings is not None:
        timings.add(rpc, time.perf_counter() - started)


def run_pod(client: CriClient, config: pb.PodSandboxConfig, timings: Timings | None = None) -> str:
    """RunPodSandbox; the pod's ID."""
    started = time.perf_counter()
    reply = client.runtime.RunPodSandbox(pb.RunPodSandboxRequest(config=config), timeout=RPC_TIMEOUT)
    _timed(timings, "RunPodSandbox", started)
    return str(reply.pod_sandbox_id)


def stop_pod(client: CriClient, pod_id: str, timings: Timings | None = None) -> None:
    """StopPodSandbox."""
    started = time.perf_counter()
    client.runtime.StopPodSandbox(pb.StopPodSandboxRequest(pod_sandbox_id=pod_id), timeout=RPC_TIMEOUT)
    _timed(timings, "StopPodSandbox", started)


def remove_pod(client: CriClient, pod_id: str, timings: Timings | None = None) -> None:
    """RemovePodSandbox."""
    started = time.perf_counter()
    client.runtime.RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=pod_id), timeout=RPC_TIMEOUT)
    _timed(timings, "RemovePodSandbox", started)


def create_container(
    client: CriClient,
    pod_id: str,
    config: pb.ContainerConfig,
    pod: pb.PodSandboxConfig,
    timings: Timings | None = None,
) -> str:
    """CreateContainer in ``pod_id``; the container's ID."""
    started = time.perf_counter()
    request = pb.CreateContainerRequest(pod_sandbox_id=pod_id, config=config, sandbox_config=pod)
    reply = client.runtime.CreateContainer(request, timeout=RPC_TIMEOUT)
    _timed(timings, "CreateContainer", started)
    return str(reply.container_id)


def start_container(client: CriClient, container_id: str, timings: Timings | None = None) -> None:
    """StartContainer."""
    started = time.perf_counter()
    client.runtime.StartContainer(pb.StartContainerRequest(container_id=container_id), timeout=RPC_TIMEOUT)
    _timed(timings, "StartContainer", started)


def stop_container(
    client: CriClient, container_id: str, grace: int = 0, timings: Timings | None = None
) -> None:
    """StopContainer with ``grace`` seconds before SIGKILL (``sleep`` as PID 1 ignores SIGTERM)."""
    started = time.perf_counter()
    request = pb.StopContainerRequest(container_id=container_id, timeout=grace)
    client.runtime.StopContainer(request, timeout=RPC_TIMEOUT + grace)
    _timed(timings, "StopContainer", started)


def remove_container(client: CriClient, container_id: str, timings: Timings | None = None) -> None:
    """RemoveContainer."""
    started = time.perf_counter()
    client.runtime.RemoveContainer(pb.RemoveContainerRequest(container_id=container_id), timeout=RPC_TIMEOUT)
    _timed(timings, "RemoveContainer", started)


def list_pod_ids(client: CriClient) -> list[str]:
    """Every pod the runtime knows (any state)."""
    reply = client.runtime.ListPodSandbox(pb.ListPodSandboxRequest(), timeout=60)
    return [str(item.id) for item in reply.items]


def list_container_ids(client: CriClient) -> list[str]:
    """Every container the runtime knows; [] when the runtime does not implement containers yet."""
    try:
        reply = client.runtime.ListContainers(pb.ListContainersRequest(), timeout=60)
    except grpc.RpcError as exc:
        if exc.code() == grpc.StatusCode.UNIMPLEMENTED:
            return []
        raise
    return [str(item.id) for item in reply.containers]


def remove_everything(client: CriClient) -> list[str]:
    """Stop and remove every container and pod (containers first); return the errors met, if any."""
    errors = []
    for container_id in list_container_ids(client):
        for call in (stop_container, remove_container):
            try:
                call(client, container_id)
            except grpc.RpcError as exc:
                errors.append(f"{call.__name__} {container_id[:12]}: {exc.code().name} {exc.details()}")
    for pod_id in list_pod_ids(client):
        for pod_call in (stop_pod, remove_pod):
            try:
                pod_call(client, pod_id)
            except grpc.RpcError as exc:
                errors.append(f"{pod_call.__name__} {pod_id[:12]}: {exc.code().name} {exc.details()}")
    return errors


def containers_supported(client: CriClient, cgroup_parent: str, log_root: Path) -> str:
    """An empty string when CreateContainer works; else why not (a pod is run and removed to find out)."""
    pod = pod_config(f"probe-{uuid.uuid4().hex[:8]}", cgroup_parent, log_root)
    pod_id = run_pod(client, pod)
    try:
        container_id = create_container(client, pod_id, container_config(), pod)
        remove_container(client, container_id)
        return ""
    except grpc.RpcError as exc:
        return f"{exc.code().name}: {exc.details()}"
    finally:
        stop_pod(client, pod_id)
        remove_pod(client, pod_id)


def describe_error(exc: BaseException) -> str:
    """A one-line description of an RPC (or other) failure."""
    if isinstance(exc, grpc.RpcError):
        return f"{exc.code().name}: {exc.details()}"
    return f"{type(exc).__name__}: {exc}"
