"""The container's namespaces: it joins the pod's network, IPC and UTS namespaces (held by the infra
container) unless the pod uses the host's, gets a PID namespace by its own mode, and always a new mount
namespace."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from crio.core.errors import FailedPrecondition, InvalidArgument
from crio.core.spec.cri import namespace_mode

NODE = "NODE"
POD = "POD"
CONTAINER = "CONTAINER"
TARGET = "TARGET"


def _proc_ns(pid: int, kind: str, what: str) -> str:
    if pid <= 0:
        raise FailedPrecondition(f"cannot join the {kind} namespace of {what}: it has no running process")
    return f"/proc/{pid}/ns/{kind}"


def linux_namespaces(
    config: Mapping[str, Any],
    pod_config: Mapping[str, Any],
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
    host_network = namespace_mode(pod_config, "network") == NODE
    if not host_network:
        namespaces.append({"type": "network", "path": pod_netns_path or _proc_ns(infra_pid, "net", pod)})
    if namespace_mode(pod_config, "ipc") != NODE:
        namespaces.append({"type": "ipc", "path": _proc_ns(infra_pid, "ipc", pod)})
    if not host_network:
        namespaces.append({"type": "uts", "path": _proc_ns(infra_pid, "uts", pod)})
    pid_mode = namespace_mode(config, "pid")
    if pid_mode == CONTAINER:
        namespaces.append({"type": "pid"})
    elif pid_mode == TARGET:
        if target_pid <= 0:
            raise InvalidArgument("pid namespace mode TARGET needs a running target container")
        namespaces.append({"type": "pid", "path": _proc_ns(target_pid, "pid", "the target container")})
    elif pid_mode == POD:
        if namespace_mode(pod_config, "pid") != NODE:
            namespaces.append({"type": "pid", "path": _proc_ns(infra_pid, "pid", pod)})
    elif pid_mode != NODE:
        raise InvalidArgument(f"unknown pid namespace mode {pid_mode!r}")
    return namespaces
