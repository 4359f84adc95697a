"""Gathers what the pure container-spec builder needs from the host, calls it, and lets security plugins
adjust the result: the image's passwd/group files, host devices, the daemon's capabilities, bind sources.
"""

from __future__ import annotations

import asyncio
import logging
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from crio.core import capabilities, security
from crio.core.config import Config
from crio.core.crirecords import ContainerConfig, LinuxContainerResources
from crio.core.errors import FailedPrecondition, InvalidArgument
from crio.core.plugins import PluginManager
from crio.core.sandbox.model import Sandbox
from crio.core.spec.container import (
    ContainerSpecInput,
    container_spec,
    dropped_annotations,
    spec_host_mount_requirements,
)
from crio.core.spec.imagefiles import read_image_file
from crio.core.spec.mounts import image_reference, wants_recursive_read_only
from crio.core.spec.node import detect_node_features
from crio.core.spec.resources import linux_resources
from crio.core.spec.user import group_with_gid, passwd_with_user
from crio.core.storage.atomic import atomic_write
from crio.core.types import RuntimeFeatures, RuntimeHandler

log = logging.getLogger(__name__)
# What this node's cgroups offer (swap accounting, hugetlb, pids, v2), read once.
NODE_FEATURES = detect_node_features()
# Whether each runtime handler supports recursive read-only mounts, asked at the first mount that wants one.
_RRO_SUPPORT: dict[RuntimeHandler, bool] = {}


@dataclass(frozen=True)
class BuiltSpec:
    """The generated spec plus what the container record keeps from it."""

    spec: dict[str, Any]
    stop_signal: str
    user: dict[str, Any] = field(default_factory=dict)


def _device(host_path: str, container_path: str, permissions: str) -> dict[str, Any]:
    try:
        st = os.stat(host_path)
    except OSError as exc:
        raise InvalidArgument(f"device {host_path}: {exc.strerror}") from None
    if stat.S_ISCHR(st.st_mode):
        kind = "c"
    elif stat.S_ISBLK(st.st_mode):
        kind = "b"
    else:
        raise InvalidArgument(f"device {host_path} is not a character or block device")
    return {
        "path": container_path or host_path,
        "type": kind,
        "major": os.major(st.st_rdev),
        "minor": os.minor(st.st_rdev),
        "fileMode": stat.S_IMODE(st.st_mode),
        "uid": st.st_uid,
        "gid": st.st_gid,
        "permissions": permissions or "rwm",
    }


def host_devices() -> list[dict[str, Any]]:
    """Every character and block device under /dev (what a privileged container gets)."""
    found = []
    for directory, dirs, names in os.walk("/dev"):
        dirs[:] = [
            d for d in dirs if os.path.join(directory, d) not in ("/dev/pts", "/dev/shm", "/dev/mqueue")
        ]
        for name in names:
            path = os.path.join(directory, name)
            try:
                st = os.lstat(path)
            except OSError:
                continue
            if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
                found.append(_device(path, path, "rwm"))
    return found


def _prepare_bind_sources(config: ContainerConfig) -> None:
    """Create missing bind-mount sources as directories, as containerd and CRI-O do (hostPath volumes).

    Image volumes are left alone: their sources are the image mounts made before.
    """
    for mount in config.mounts:
        if image_reference(mount):
            continue
        source = mount.host_path
        if not source:
            raise InvalidArgument(f"mount of {mount.container_path or '?'} has no host_path")
        if not os.path.isabs(source):
            raise InvalidArgument(f"mount host_path {source!r} is not absolute")
        if not os.path.lexists(source):
            os.makedirs(source, mode=0o755, exist_ok=True)


def _check_host_propagation(requirements: list[tuple[str, str]]) -> None:
    """A mount that propagates to or from the host needs its host mount to be shared (or slave)."""
    if not requirements:
        return
    with open("/proc/self/mountinfo", encoding="utf-8") as handle:
        entries = [line.split() for line in handle]
    for path, wanted in requirements:
        real = os.path.realpath(path)
        best: list[str] | None = None
        for entry in entries:
            point = entry[4]
            if (real == point or real.startswith(point.rstrip("/") + "/")) and (
                best is None or len(point) > len(best[4])
            ):
                best = entry
        if best is None:
            continue
        optional = best[6 : best.index("-")]
        shared = any(o.startswith("shared:") for o in optional)
        slave = any(o.startswith("master:") for o in optional)
        if wanted == "shared" and not shared:
            raise FailedPrecondition(f"path {path} is mounted on {best[4]}, which is not a shared mount")
        if wanted == "slave" and not (shared or slave):
            raise FailedPrecondition(
                f"path {path} is mounted on {best[4]}, which is neither shared nor slave"
            )


def _gather(
    config: ContainerConfig, rootfs: str
) -> tuple[str, str, list[dict[str, Any]], list[dict[str, Any]]]:
    _prepare_bind_sources(config)
    passwd = read_image_file(rootfs, "/etc/passwd")
    group = read_image_file(rootfs, "/etc/group")
    devices = [_device(d.host_path, d.container_path, d.permissions) for d in config.devices]
    privileged = config.security_context.privileged
    return passwd, group, devices, host_devices() if privileged else []


async def build(
    config: Config,
    plugins: PluginManager,
    container_id: str,
    container_config: ContainerConfig,
    pod: Sandbox,
    image_config: Mapping[str, Any],
    rootfs: str,
    infra_pid: int,
    pod_spec: Mapping[str, Any] | None = None,
    userdata: Path | None = None,
    image_volumes: Mapping[str, str] | None = None,
) -> BuiltSpec:
    """Build the container's OCI spec (blocking work in a thread) and apply the security plugins.

    ``pod_spec`` is the OCI spec of the pod's infra container, handed to the security plugins (a pod's
    containers share its SELinux level). When the process's user or group is missing from the image's
    /etc/passwd or /etc/group, a copy with the entry added is written into ``userdata`` (the container's
    directory, never the rootfs) and bind-mounted over the image's file. ``image_volumes`` maps each image
    volume's container path to the directory to bind (see :mod:`crio.core.containers.imagevolumes`).
    """
    passwd, group, devices, privileged_devices = await asyncio.to_thread(_gather, container_config, rootfs)
    spec_input = ContainerSpecInput(
        container_id=container_id,
        pod_id=pod.id,
        config=container_config,
        pod_config=pod.config,
        image_config=image_config,
        rootfs=rootfs,
        infra_pid=infra_pid,
        pod_netns_path=pod.netns_path,
        pod_shm_path=pod.shm_path,
        pod_files=pod.files,
        pod_hostname=pod.hostname,
        cgroup_parent=pod.cgroup_parent,
        passwd=passwd,
        group=group,
        bounding_caps=capabilities.bounding_set(),
        default_caps=list(config.get("crio.runtime.default_capabilities")),
        daemon_oom_score_adj=_own_oom_score_adj(),
        devices=devices,
        host_devices=privileged_devices,
        node=NODE_FEATURES,
        allowed_annotations=_allowed_annotations(config, pod.runtime_handler),
        rro_supported=await _rro_supported(config, plugins, pod.runtime_handler, container_config),
        pod_userns_path=pod.userns_path,
        uid_mappings=pod.uid_mappings,
        gid_mappings=pod.gid_mappings,
        image_volumes=dict(image_volumes or {}),
    )
    await asyncio.to_thread(_check_host_propagation, spec_host_mount_requirements(spec_input))
    spec = container_spec(spec_input)
    if userdata is not None:
        await asyncio.to_thread(_add_identity_files, spec, passwd, group, userdata)
    request = security.container_request(container_config, pod.id, pod.config, pod_spec or {})
    await security.check(plugins, request)
    await security.adjust(plugins, request, spec)
    user = spec.get("process", {}).get("user", {})
    dropped = dropped_annotations(spec_input)
    if dropped:
        log.info("container %s: dropped runtime-interpreted annotations %s", container_id, ", ".join(dropped))
    settings = image_config.get("config") or {}
    return BuiltSpec(
        spec=spec,
        stop_signal=str(settings.get("StopSignal") or ""),
        user={
            "uid": user.get("uid", 0),
            "gid": user.get("gid", 0),
            "supplemental_groups": list(user.get("additionalGids", [])),
        },
    )


def oci_resources(linux: LinuxContainerResources) -> dict[str, Any]:
    """CRI LinuxContainerResources → OCI ``linux.resources``, for this node."""
    return linux_resources(linux, 0, NODE_FEATURES)


def _add_identity_files(spec: dict[str, Any], passwd: str, group: str, directory: Path) -> None:
    """Write /etc/passwd and /etc/group copies with the process's user and group added where the image lacks
    them, and bind-mount them (unless a CRI mount already targets that path)."""
    process = spec["process"]
    uid, gid = int(process["user"]["uid"]), int(process["user"]["gid"])
    home = next((e.partition("=")[2] for e in process.get("env", []) if e.startswith("HOME=")), "/")
    readonly = bool(spec.get("root", {}).get("readonly"))
    taken = {str(m.get("destination")) for m in spec.get("mounts", [])}
    generated = (("passwd", passwd_with_user(passwd, uid, gid, home)), ("group", group_with_gid(group, gid)))
    for name, text in generated:
        destination = f"/etc/{name}"
        if text is None or destination in taken:
            continue
        path = directory / name
        atomic_write(path, text.encode(), mode=0o644)
        spec["mounts"].append(
            {
                "destination": destination,
                "type": "bind",
                "source": str(path),
                "options": ["bind", "rprivate", "nosuid", "nodev", "noexec", "ro" if readonly else "rw"],
            }
        )


async def _rro_supported(
    config: Config, plugins: PluginManager, handler_name: str, container_config: ContainerConfig
) -> bool:
    """Whether the pod's runtime handler supports recursive read-only mounts; asked (once per handler) only
    when a mount wants one."""
    if not wants_recursive_read_only(container_config):
        return True
    handler = config.runtime_handlers().get(handler_name)
    if handler is None:
        return False
    cached = _RRO_SUPPORT.get(handler)
    if cached is None:
        pending = plugins.hook.crio_runtime_features(handler=handler)
        try:
            features: RuntimeFeatures = await pending if pending is not None else RuntimeFeatures()
        except Exception as exc:  # a runtime that cannot report features supports none of them
            log.warning("runtime handler %s: cannot read features: %s", handler_name, exc)
            features = RuntimeFeatures()
        cached = _RRO_SUPPORT[handler] = features.recursive_read_only_mounts
    return cached


def _allowed_annotations(config: Config, handler_name: str) -> tuple[str, ...]:
    """The ``allowed_annotations`` of the pod's runtime handler (none for an unknown handler)."""
    handler = config.runtime_handlers().get(handler_name)
    return handler.allowed_annotations if handler is not None else ()


def _own_oom_score_adj() -> int:
    try:
        with open("/proc/self/oom_score_adj", encoding="ascii") as handle:
            return int(handle.read().strip())
    except (OSError, ValueError):
        return 0
