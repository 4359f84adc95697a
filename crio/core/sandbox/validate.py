"""Validation of a pod sandbox request: metadata, sysctls, port mappings. Pure functions.

Every problem is an :class:`crio.core.errors.InvalidArgument` naming the field, raised before anything is
created.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Literal

from crio.core.crirecords import IDMapping, PodSandboxConfig, PodSandboxMetadata, PortMapping
from crio.core.errors import InvalidArgument

# The sysctls that are namespaced, so a pod may set them without touching the host (see cri-o.md §4).
_NET = "net."
_IPC_PREFIXES = ("kernel.shm", "kernel.msg", "fs.mqueue.")
_IPC_EXACT = ("kernel.sem",)
# A key is dot- or slash-free segments of [a-z0-9_-] (plus '*'-free); values may not smuggle settings.
_KEY_RE = re.compile(r"[a-z0-9_-]+(\.[a-z0-9_-]+)+")
_FORBIDDEN_IN_VALUE = ("+", "=", "\n", "\r", "\0", "/", "..")
_NAME_RE = re.compile(r"[a-zA-Z0-9]([-a-zA-Z0-9_.]*[a-zA-Z0-9])?")
MAX_NAME = 253
MAX_HOSTNAME = 64


def namespace_mode(config: PodSandboxConfig, kind: Literal["network", "pid", "ipc"]) -> str:
    """The pod's namespace mode for ``kind``: POD, CONTAINER, NODE or TARGET."""
    options = config.namespace_options
    return {"network": options.network, "pid": options.pid, "ipc": options.ipc}[kind]


def validate_metadata(config: PodSandboxConfig) -> None:
    """Require metadata with a usable name, namespace and uid (an empty metadata counts as none)."""
    metadata = config.metadata
    if metadata == PodSandboxMetadata():
        raise InvalidArgument("PodSandboxConfig.metadata is required")
    for field, value in (("name", metadata.name), ("namespace", metadata.namespace), ("uid", metadata.uid)):
        if not value:
            raise InvalidArgument(f"PodSandboxConfig.metadata.{field} is required")
        if len(value) > MAX_NAME or not _NAME_RE.fullmatch(value):
            raise InvalidArgument(f"PodSandboxConfig.metadata.{field} {value!r} is not a valid name")


def validate_hostname(config: PodSandboxConfig) -> None:
    """A pod hostname must be a valid host name of at most 64 characters (sethostname's limit)."""
    hostname = config.hostname
    if hostname and (len(hostname) > MAX_HOSTNAME or not _NAME_RE.fullmatch(hostname)):
        raise InvalidArgument(f"PodSandboxConfig.hostname {hostname!r} is not a valid host name")


def sysctl_kind(key: str) -> str:
    """Which namespace a sysctl belongs to: "net", "ipc", or "" when it is not namespaced."""
    if key.startswith(_NET):
        return "net"
    if key.startswith(_IPC_PREFIXES) or key in _IPC_EXACT:
        return "ipc"
    return ""


def validate_sysctls(sysctls: Mapping[str, str], host_network: bool, host_ipc: bool) -> dict[str, str]:
    """Check the pod's sysctls and return them with keys in dotted form.

    Only namespaced sysctls are accepted; net.* with host network and IPC ones with host IPC are refused.
    Keys and values that could smuggle another setting (``+``, ``=``, newlines, ``/``, ``..``, spaces,
    NUL) are refused, as are values that are not printable ASCII (the kernel would refuse them at create).
    """
    result: dict[str, str] = {}
    for raw_key, value in sysctls.items():
        key = raw_key.replace("/", ".") if "." not in raw_key else raw_key
        if not _KEY_RE.fullmatch(key):
            raise InvalidArgument(f"sysctl {raw_key!r}: invalid key")
        if not value or any(bad in value for bad in _FORBIDDEN_IN_VALUE) or value != value.strip():
            raise InvalidArgument(f"sysctl {raw_key}: invalid value {value!r}")
        if not (value.isascii() and value.isprintable()):
            raise InvalidArgument(f"sysctl {raw_key}: invalid value {value!r}: only printable ASCII")
        if any(c.isspace() for c in value) and not _is_vector(value):
            raise InvalidArgument(f"sysctl {raw_key}: invalid value {value!r}")
        kind = sysctl_kind(key)
        if not kind:
            raise InvalidArgument(f"sysctl {key} is not namespaced; a pod cannot set it")
        if kind == "net" and host_network:
            raise InvalidArgument(f"sysctl {key} cannot be set in a pod that uses the host network")
        if kind == "ipc" and host_ipc:
            raise InvalidArgument(f"sysctl {key} cannot be set in a pod that uses the host IPC namespace")
        result[key] = value
    return result


def _is_vector(value: str) -> bool:
    """Multi-number values such as kernel.sem's "250 32000 32 128" (single spaces between integers)."""
    return all(part.isdigit() for part in value.split(" "))


def validate_port_mappings(mappings: Sequence[PortMapping]) -> None:
    """Ports are 0..65535 and container ports are set."""
    for index, mapping in enumerate(mappings):
        container_port = mapping.container_port
        host_port = mapping.host_port
        if not 0 < container_port < 65536:
            raise InvalidArgument(f"port_mappings[{index}].container_port {container_port} is out of range")
        if not 0 <= host_port < 65536:
            raise InvalidArgument(f"port_mappings[{index}].host_port {host_port} is out of range")


MAX_ID_SPAN = 1 << 32


def _mapping(mapping: IDMapping, what: str) -> tuple[int, int, int]:
    container_id, host_id, length = mapping.container_id, mapping.host_id, mapping.length
    if length <= 0:
        raise InvalidArgument(f"user namespace {what} mapping has length {length}")
    if container_id + length > MAX_ID_SPAN or host_id + length > MAX_ID_SPAN:
        raise InvalidArgument(f"user namespace {what} mapping runs past the 32-bit ID range")
    return container_id, host_id, length


def validate_userns(config: PodSandboxConfig) -> str:
    """The pod's user namespace mode: "NODE" (none: also when the request has no UsernsOptions) or "POD".

    CONTAINER and TARGET modes are refused, as is a POD mode without exactly one UID and one GID mapping
    each mapping container ID 0 (the CRI's rules), or a NODE mode that carries mappings.
    """
    options = config.namespace_options
    userns = options.userns_options
    if userns is None:
        return "NODE"
    mode = userns.mode
    uids, gids = userns.uids, userns.gids
    if mode == "NODE":
        if uids or gids:
            raise InvalidArgument("user namespace mode NODE takes no ID mappings")
        return "NODE"
    if mode != "POD":
        raise InvalidArgument(f"user namespace mode {mode} is not supported (only POD and NODE)")
    for kind, kind_mode in (("network", options.network), ("pid", options.pid), ("ipc", options.ipc)):
        if kind_mode == "NODE":
            raise InvalidArgument(f"a pod with its own user namespace cannot use the host's {kind} namespace")
    for what, mappings in (("uid", uids), ("gid", gids)):
        if len(mappings) != 1:
            raise InvalidArgument(
                f"user namespace mode POD needs exactly one {what} mapping, got {len(mappings)}"
            )
        container_id, _, _ = _mapping(mappings[0], what)
        if container_id != 0:
            raise InvalidArgument(f"user namespace {what} mapping must map container ID 0")
    return "POD"
