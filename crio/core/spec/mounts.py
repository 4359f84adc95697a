"""The container's mounts: the system ones (proc, dev, sys, cgroup, /dev/shm, the pod's files) and the CRI
bind mounts, with their propagation, and the host-side propagation each bind mount needs.

A CRI mount with ``image.image`` set is an image volume: the caller has mounted the image read-only and
hands the directory to bind (the image's root or its ``image_sub_path``) in, by container path."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from crio.core.crirecords import ContainerConfig, Mount
from crio.core.errors import Internal, InvalidArgument, Unimplemented
from crio.core.spec.defaults import cgroup_mount, default_mounts
from crio.core.spec.paths import clean_absolute

PRIVATE = "PROPAGATION_PRIVATE"
HOST_TO_CONTAINER = "PROPAGATION_HOST_TO_CONTAINER"
BIDIRECTIONAL = "PROPAGATION_BIDIRECTIONAL"
PROPAGATION_OPTIONS = {PRIVATE: "rprivate", HOST_TO_CONTAINER: "rslave", BIDIRECTIONAL: "rshared"}
# What the host side of a bind mount must be for the propagation to work: "shared" means exactly that,
# "slave" means shared or slave.
HOST_PROPAGATION = {HOST_TO_CONTAINER: "slave", BIDIRECTIONAL: "shared"}
POD_FILES = {"resolv.conf": "/etc/resolv.conf", "hostname": "/etc/hostname", "hosts": "/etc/hosts"}
HOST_SHM = "/dev/shm"
# Replacing one of these with a CRI mount also drops the system mounts below it.
_SUBTREE_OWNERS = ("/dev", "/sys")
# Image volumes are never noexec: the KEP lets containers run programs from them.
IMAGE_VOLUME_OPTIONS = ("nosuid", "nodev")


def container_path(mount: Mount) -> str:
    """A CRI mount's destination, canonical; relative paths, ``..`` components and "/" are refused."""
    return clean_container_path(mount.container_path)


def clean_container_path(path: str) -> str:
    """A path in the container (a mount's or a device's), canonical; relative paths, ``..`` components and
    "/" are refused."""
    if not path.startswith("/"):
        raise InvalidArgument(f"mount container_path {path!r} is not an absolute path")
    if ".." in path.split("/"):
        raise InvalidArgument(f"mount container_path {path!r} contains '..'")
    cleaned = clean_absolute(path)
    if cleaned == "/":
        raise InvalidArgument("mount container_path must not be the container's root")
    return cleaned


def propagation(mount: Mount) -> str:
    """A CRI mount's propagation name (PROPAGATION_PRIVATE when unset); unknown values are refused."""
    value = mount.propagation
    if value not in PROPAGATION_OPTIONS:
        raise InvalidArgument(f"mount {mount.container_path!r}: unknown propagation {value!r}")
    return value


def image_reference(mount: Mount) -> str:
    """The image a CRI mount mounts (``image.image``); "" for a host path mount."""
    return mount.image.image if mount.image is not None else ""


def check_image_mount(mount: Mount) -> str:
    """Validate an image volume's CRI mount; return its canonical container path.

    The host path must be empty (the fields are exclusive) and ``readonly`` true (image volumes are
    read-only by definition); id-mapped image volumes are not supported.
    """
    destination = container_path(mount)
    if mount.host_path:
        raise InvalidArgument(f"mount {destination}: host_path and image are mutually exclusive")
    if not mount.readonly:
        raise InvalidArgument(f"mount {destination}: an image volume must be read-only (readonly=true)")
    if mount.uidMappings or mount.gidMappings:
        raise Unimplemented(f"id-mapped mounts are not supported (mount {destination})")
    return destination


def cri_mount(mount: Mount, rro_supported: bool = True, image_source: str = "") -> dict[str, Any]:
    """The OCI bind mount of one CRI mount.

    ``recursive_read_only`` needs ``readonly``, private propagation and a runtime handler that supports it
    (``rro_supported``); it becomes the ``rro`` option. ``selinux_relabel`` is ignored here; id-mapped
    mounts are not supported. An image volume binds ``image_source`` (the mounted image, or the directory of
    its sub path) read-only, ``nosuid`` and ``nodev``.
    """
    destination = container_path(mount)
    extra: tuple[str, ...] = ()
    if image_reference(mount):
        check_image_mount(mount)
        if not image_source:
            raise Internal(f"image volume {destination} was not mounted before building the spec")
        source = image_source
        extra = IMAGE_VOLUME_OPTIONS
    else:
        if mount.uidMappings or mount.gidMappings:
            raise Unimplemented(f"id-mapped mounts are not supported (mount {destination})")
        source = mount.host_path
        if not source.startswith("/"):
            raise InvalidArgument(f"mount {destination}: host_path {source!r} is not an absolute path")
    mode = propagation(mount)
    readonly = mount.readonly
    if mount.recursive_read_only:
        if not readonly:
            raise InvalidArgument(f"mount {destination}: recursive read-only needs a read-only mount")
        if mode != PRIVATE:
            raise InvalidArgument(
                f"mount {destination}: recursive read-only needs private propagation, got {mode}"
            )
        if not rro_supported:
            raise InvalidArgument(
                f"mount {destination}: the runtime handler does not support recursive read-only mounts"
            )
        access = "rro"
    else:
        access = "ro" if readonly else "rw"
    return {
        "destination": destination,
        "type": "bind",
        "source": source,
        "options": ["rbind", PROPAGATION_OPTIONS[mode], access, *extra],
    }


def cri_mounts(
    config: ContainerConfig, rro_supported: bool = True, image_sources: Mapping[str, str] | None = None
) -> list[dict[str, Any]]:
    """The OCI mounts of a ContainerConfig's ``mounts``; two mounts on one destination are refused.

    ``image_sources`` maps an image volume's canonical container path to the directory to bind.
    """
    result: list[dict[str, Any]] = []
    seen: set[str] = set()
    sources = image_sources or {}
    for mount in config.mounts:
        source = sources.get(container_path(mount), "") if image_reference(mount) else ""
        oci = cri_mount(mount, rro_supported, source)
        if oci["destination"] in seen:
            raise InvalidArgument(f"two mounts share the container path {oci['destination']}")
        seen.add(oci["destination"])
        result.append(oci)
    return result


def system_mounts(
    privileged: bool,
    shm_path: str,
    host_ipc: bool,
    pod_files: Mapping[str, str],
    readonly_rootfs: bool,
) -> list[dict[str, Any]]:
    """proc, dev, devpts, mqueue, sysfs and cgroup (sysfs and cgroup writable only when privileged), the
    pod's /dev/shm (the host's with host IPC, a private tmpfs when the pod has none), and the pod's
    resolv.conf, hostname and hosts (read-only with a read-only rootfs)."""
    mounts = default_mounts(read_only_sys=not privileged)
    mounts.append(cgroup_mount(read_only=not privileged))
    shm_source = HOST_SHM if host_ipc else shm_path
    if shm_source:
        mounts.append(
            {
                "destination": "/dev/shm",
                "type": "bind",
                "source": shm_source,
                "options": ["rbind", "rprivate", "nosuid", "noexec", "nodev"],
            }
        )
    else:
        mounts.append(
            {
                "destination": "/dev/shm",
                "type": "tmpfs",
                "source": "shm",
                "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
            }
        )
    access = "ro" if readonly_rootfs else "rw"
    for name, destination in POD_FILES.items():
        source = pod_files.get(name, "")
        if source:
            mounts.append(
                {
                    "destination": destination,
                    "type": "bind",
                    "source": source,
                    "options": ["bind", "rprivate", "nosuid", "nodev", "noexec", access],
                }
            )
    return mounts


def _depth(mount: Mapping[str, Any]) -> int:
    return len([part for part in str(mount["destination"]).split("/") if part])


def _overridden(destination: str, cri_destinations: set[str]) -> bool:
    if destination in cri_destinations:
        return True
    return any(owner in cri_destinations and destination.startswith(owner + "/") for owner in _SUBTREE_OWNERS)


def merge_mounts(
    system: Sequence[Mapping[str, Any]], cri: Sequence[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """System mounts not replaced by a CRI mount (same destination; all of /dev or /sys when the CRI mounts
    those), then the CRI mounts, stably sorted by depth so a parent is mounted before its children."""
    cri_destinations = {str(m["destination"]) for m in cri}
    kept = [
        dict(m) for m in system if not _overridden(clean_absolute(str(m["destination"])), cri_destinations)
    ]
    return sorted([*kept, *(dict(m) for m in cri)], key=_depth)


def rootfs_propagation(config: ContainerConfig) -> str:
    """``linux.rootfsPropagation``: "rshared" when a mount is bidirectional, "rslave" when one is
    host-to-container, else "" (the runtime's default)."""
    modes = {propagation(m) for m in config.mounts}
    if BIDIRECTIONAL in modes:
        return "rshared"
    if HOST_TO_CONTAINER in modes:
        return "rslave"
    return ""


def wants_recursive_read_only(config: ContainerConfig) -> bool:
    """Whether any CRI mount asks for a recursive read-only mount."""
    return any(m.recursive_read_only for m in config.mounts)


def host_mount_requirements(config: ContainerConfig) -> list[tuple[str, str]]:
    """(host path, "shared" | "slave") for every CRI mount whose propagation needs the host side to be a
    shared mount ("shared") or a shared or slave one ("slave"); the caller checks or fixes the host."""
    result = []
    for mount in config.mounts:
        if image_reference(mount):
            continue  # crio's own read-only image mount: nothing is mounted below it to propagate
        need = HOST_PROPAGATION.get(propagation(mount))
        if need:
            result.append((mount.host_path, need))
    return result
