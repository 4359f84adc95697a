"""The container's namespaces: it joins the pod's network, IPC and UTS namespaces (held by the infra
container) unless the pod uses the host's, gets a PID namespace by its own mode, and always a new mount
namespace."""

from __future__ import annotations

from crio.core.crirecords import CONTAINER, NODE, POD, TARGET, ContainerConfig, PodSandboxConfig
from crio.core.errors import FailedPrecondition, InvalidArgument

__all__ = ["CONTAINER", "NODE", "POD", "TARGET", "linux_namespaces"]


def _proc_ns(pid: int, kind: str, what: str) -> str:
    if pid <= 0:
        raise FailedPrecondition(f"cannot join the {kind} namespace of {what}: it has no running process")
    return f"/proc/{pid}/ns/{kind}"


def linux_namespaces(
    config: ContainerConfig,
    pod_config: PodSandboxConfig,
    infra_pid: int,
    pod_netns_path: str,
    target_pid: int = 0,
) -> list[dict[str, str]]:
    """OCI ``linux.namespaces``.

    network: the pod's pinned netns path (or the infra's), none with host network; ipc: the infra's, none
    with host IPC; uts: the infra's, none with host network; pid by the container's mode: POD joins the
    infra's (none when the pod uses the host's), CONTAINER is a new one, NODE none, TARGET joins
    ``target_pid``'s; mount: always new; no cgroup or user namespace.
    """
    pod = "the pod's infra container"
    namespaces: list[dict[str, str]] = [{"type": "mount"}]
    pod_modes = pod_config.namespace_options
    host_network = pod_modes.network == NODE
    if not host_network:
        namespaces.append({"type": "network", "path": pod_netns_path or _proc_ns(infra_pid, "net", pod)})
    if pod_modes.ipc != NODE:
        namespaces.append({"type": "ipc", "path": _proc_ns(infra_pid, "ipc", pod)})
    if not host_network:
        namespaces.append({"type": "uts", "path": _proc_ns(infra_pid, "uts", pod)})
    pid_mode = config.namespace_options.pid
    if pid_mode == CONTAINER:
        namespaces.append({"type": "pid"})
    elif pid_mode == TARGET:
        if target_pid <= 0:
            raise InvalidArgument("pid namespace mode TARGET needs a running target container")
        namespaces.append({"type": "pid", "path": _proc_ns(target_pid, "pid", "the target container")})
    elif pid_mode == POD:
        if pod_modes.pid != NODE:
            namespaces.append({"type": "pid", "path": _proc_ns(infra_pid, "pid", pod)})
    elif pid_mode != NODE:
        raise InvalidArgument(f"unknown pid namespace mode {pid_mode!r}")
    return namespaces
