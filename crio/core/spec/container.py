"""The OCI runtime spec of a pod's container, built by a pure function from the CRI ContainerConfig, the
pod's PodSandboxConfig and state, the image config, and host facts the caller has looked up."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from crio.core.crirecords import ContainerConfig, PodSandboxConfig
from crio.core.errors import InvalidArgument
from crio.core.spec import annotations as ann
from crio.core.spec.capabilities import process_capabilities
from crio.core.spec.defaults import MASKED_PATHS, OCI_VERSION, READONLY_PATHS
from crio.core.spec.devices import container_devices
from crio.core.spec.mounts import (
    cri_mounts,
    host_mount_requirements,
    merge_mounts,
    rootfs_propagation,
    system_mounts,
)
from crio.core.spec.namespaces import NODE, linux_namespaces
from crio.core.spec.process import process_args, process_env, working_dir
from crio.core.spec.resources import NodeFeatures, linux_resources, oom_score_adj
from crio.core.spec.user import ProcessUser, resolve_user

DEFAULT_CGROUP_PARENT = "/crio"


@dataclass(frozen=True)
class ContainerSpecInput:
    """Everything a container's spec is built from: the CRI configs as records, the rest plain data."""

    container_id: str
    pod_id: str
    config: ContainerConfig
    pod_config: PodSandboxConfig  # the pod's
    image_config: Mapping[str, Any]  # OCI image config JSON ({"config": {"User", "Env", ...}})
    rootfs: str  # the mounted root filesystem
    infra_pid: int  # the pod's namespaces are joined through /proc/<pid>/ns/<ns>
    pod_netns_path: str  # "" with host network
    pod_shm_path: str  # "" with host IPC
    pod_files: Mapping[str, str]  # "hostname"/"resolv.conf"/"hosts" → host paths
    pod_hostname: str
    cgroup_parent: str  # the pod's cgroupfs parent ("" → /crio)
    passwd: str  # the image's /etc/passwd ("" when absent), see imagefiles.read_image_file
    group: str  # the image's /etc/group
    bounding_caps: Sequence[str]  # the daemon's bounding set ("CAP_CHOWN", ...)
    default_caps: Sequence[str]  # crio.runtime.default_capabilities
    daemon_oom_score_adj: int  # oomScoreAdj when the config has no resources at all
    pids_limit: int = 0  # > 0: linux.resources.pids.limit
    image_name: str = ""  # for the image-name annotation; "" → config.image.image
    target_pid: int = 0  # the target container's pid for pid namespace mode TARGET
    devices: Sequence[Mapping[str, Any]] = ()  # the CRI devices, resolved (see crio.core.spec.devices)
    host_devices: Sequence[Mapping[str, Any]] = ()  # every host device; used only when privileged
    node: NodeFeatures = field(default_factory=NodeFeatures)
    allowed_annotations: Sequence[str] = ()  # the runtime handler's allowed_annotations
    rro_supported: bool = True  # the runtime handler supports recursive read-only mounts
    pod_userns_path: str = ""  # the pod's pinned user namespace, "" for none
    uid_mappings: Sequence[Mapping[str, int]] = ()  # the pod's, OCI form
    gid_mappings: Sequence[Mapping[str, int]] = ()
    # image volumes: canonical container path → the directory to bind (the mounted image or its sub path)
    image_volumes: Mapping[str, str] = field(default_factory=dict)


def cgroups_path(cgroup_parent: str, container_id: str) -> str:
    """``linux.cgroupsPath`` (cgroupfs form) of a container under its pod's cgroup parent."""
    return f"{cgroup_parent or DEFAULT_CGROUP_PARENT}/crio-{container_id}"


def _image_settings(inp: ContainerSpecInput) -> Mapping[str, Any]:
    """The ``config`` section of the OCI image config ({} when absent)."""
    settings = inp.image_config.get("config")
    return settings if isinstance(settings, Mapping) else {}


def process_user(inp: ContainerSpecInput) -> ProcessUser:
    """The process user of the container (also what ContainerStatus reports)."""
    image_user = str(_image_settings(inp).get("User") or "")
    return resolve_user(inp.config.security_context, image_user, inp.passwd, inp.group)


def _paths(requested: Sequence[str], defaults: Sequence[str], privileged: bool) -> list[str]:
    """Masked or read-only paths: none when privileged, the CRI list when given (the kubelet sends the
    whole list), else crio's defaults."""
    if privileged:
        return []
    return list(requested) or list(defaults)


def _annotations(inp: ContainerSpecInput) -> dict[str, str]:
    kept, _ = ann.split_annotations(inp.config.annotations, inp.allowed_annotations)
    pod_metadata = inp.pod_config.metadata
    own = {
        ann.CONTAINER_TYPE: "container",
        ann.SANDBOX_ID: inp.pod_id,
        ann.SANDBOX_NAME: pod_metadata.name,
        ann.SANDBOX_NAMESPACE: pod_metadata.namespace,
        ann.SANDBOX_UID: pod_metadata.uid,
        ann.CONTAINER_NAME: inp.config.metadata.name,
        ann.IMAGE_NAME: inp.image_name or inp.config.image.image,
    }
    return {**kept, **own}


def dropped_annotations(inp: ContainerSpecInput) -> list[str]:
    """The CRI annotation keys left out of the spec because a runtime interprets them (for a log line)."""
    return ann.split_annotations(inp.config.annotations, inp.allowed_annotations)[1]


def spec_host_mount_requirements(inp: ContainerSpecInput) -> list[tuple[str, str]]:
    """(host path, "shared" | "slave") the host side of the container's bind mounts needs (see
    :func:`crio.core.spec.mounts.host_mount_requirements`)."""
    return host_mount_requirements(inp.config)


def container_spec(inp: ContainerSpecInput) -> dict[str, Any]:
    """The OCI runtime spec (as a dict) of the container.

    Raises :class:`crio.core.errors.InvalidArgument` for a request that can never work (bad user, mount,
    device, environment or resources; a writable image volume), :class:`crio.core.errors.Unimplemented` for
    id-mapped mounts, :class:`crio.core.errors.Internal` for an image volume missing from ``image_volumes``,
    :class:`crio.core.errors.FailedPrecondition` when a namespace to join has no process.
    AppArmor, seccomp and SELinux are left to the security plugins.
    """
    config = inp.config
    context = config.security_context
    privileged = context.privileged
    if privileged and not inp.pod_config.security_context.privileged:
        raise InvalidArgument("a privileged container needs a privileged pod sandbox")
    image = _image_settings(inp)
    user = process_user(inp)
    host_network = inp.pod_config.namespace_options.network == NODE
    host_ipc = inp.pod_config.namespace_options.ipc == NODE
    readonly_rootfs = context.readonly_rootfs
    system = system_mounts(privileged, inp.pod_shm_path, host_ipc, inp.pod_files, readonly_rootfs)
    nodes, device_rules = container_devices(inp.devices, inp.host_devices, privileged)
    resources = linux_resources(config.resources, inp.pids_limit, inp.node)
    resources["devices"] = device_rules
    namespaces = linux_namespaces(config, inp.pod_config, inp.infra_pid, inp.pod_netns_path, inp.target_pid)
    linux: dict[str, Any] = {
        "namespaces": namespaces,
        "cgroupsPath": cgroups_path(inp.cgroup_parent, inp.container_id),
        "resources": resources,
        "devices": nodes,
        "maskedPaths": _paths(context.masked_paths, MASKED_PATHS, privileged),
        "readonlyPaths": _paths(context.readonly_paths, READONLY_PATHS, privileged),
    }
    if inp.pod_userns_path:
        namespaces.append({"type": "user", "path": inp.pod_userns_path})
        linux["uidMappings"] = [dict(m) for m in inp.uid_mappings]
        linux["gidMappings"] = [dict(m) for m in inp.gid_mappings]
    propagation = rootfs_propagation(config)
    if propagation:
        linux["rootfsPropagation"] = propagation
    spec: dict[str, Any] = {
        "ociVersion": OCI_VERSION,
        "process": {
            "terminal": config.tty,
            "user": {"uid": user.uid, "gid": user.gid, "additionalGids": list(user.additional_gids)},
            "args": process_args(config, image),
            "env": process_env(config, image, inp.pod_hostname, user.home),
            "cwd": working_dir(config, image),
            "capabilities": process_capabilities(
                context.capabilities, inp.default_caps, inp.bounding_caps, privileged
            ),
            "noNewPrivileges": context.no_new_privs,
            "oomScoreAdj": oom_score_adj(config, inp.daemon_oom_score_adj),
        },
        "root": {"path": inp.rootfs, "readonly": readonly_rootfs},
        "mounts": merge_mounts(system, cri_mounts(config, inp.rro_supported, inp.image_volumes)),
        "annotations": _annotations(inp),
        "linux": linux,
    }
    if not host_network:
        spec["hostname"] = inp.pod_hostname
    return spec
