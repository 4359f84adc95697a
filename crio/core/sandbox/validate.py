"""Validation of a pod sandbox request: metadata, sysctls, port mappings. Pure functions.

Every problem is an :class:`crio.core.errors.InvalidArgument` naming the field, raised before anything is
created.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

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


def namespace_mode(config: Mapping[str, Any], kind: str) -> str:
    """The pod's namespace mode for ``kind`` ("network", "pid", "ipc"): POD, CONTAINER, NODE or TARGET."""
    options = config.get("linux", {}).get("security_context", {}).get("namespace_options", {})
    return str(options.get(kind, "POD"))


def validate_metadata(config: Mapping[str, Any]) -> None:
    """Require metadata with a usable name, namespace and uid."""
    metadata = config.get("metadata")
    if not metadata:
        raise InvalidArgument("PodSandboxConfig.metadata is required")
    for field in ("name", "namespace", "uid"):
        value = str(metadata.get(field, ""))
        if not value:
            raise InvalidArgument(f"PodSandboxConfig.metadata.{field} is required")
        if len(value) > MAX_NAME or not _NAME_RE.fullmatch(value):
            raise InvalidArgument(f"PodSandboxConfig.metadata.{field} {value!r} is not a valid name")
    attempt = int(metadata.get("attempt", 0))
    if attempt < 0:
        raise InvalidArgument(f"PodSandboxConfig.metadata.attempt must not be negative, got {attempt}")


def validate_hostname(config: Mapping[str, Any]) -> None:
    """A pod hostname must be a valid host name of at most 64 characters (sethostname's limit)."""
    hostname = str(config.get("hostname", ""))
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
    NUL) are refused.
    """
    result: dict[str, str] = {}
    for raw_key, value in sysctls.items():
        key = raw_key.replace("/", ".") if "." not in raw_key else raw_key
        if not _KEY_RE.fullmatch(key):
            raise InvalidArgument(f"sysctl {raw_key!r}: invalid key")
        if not value or any(bad in value for bad in _FORBIDDEN_IN_VALUE) or value != value.strip():
            raise InvalidArgument(f"sysctl {raw_key}: invalid value {value!r}")
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


def validate_port_mappings(mappings: list[Mapping[str, Any]]) -> None:
    """Ports are 0..65535 and container ports are set."""
    for index, mapping in enumerate(mappings):
        container_port = int(mapping.get("container_port", 0))
        host_port = int(mapping.get("host_port", 0))
        if not 0 < container_port < 65536:
            raise InvalidArgument(f"port_mappings[{index}].container_port {container_port} is out of range")
        if not 0 <= host_port < 65536:
            raise InvalidArgument(f"port_mappings[{index}].host_port {host_port} is out of range")


MAX_ID_SPAN = 1 << 32


def _mapping(raw: Mapping[str, Any], what: str) -> tuple[int, int, int]:
    container_id, host_id, length = (int(raw.get(k, 0)) for k in ("container_id", "host_id", "length"))
    if length <= 0:
        raise InvalidArgument(f"user namespace {what} mapping has length {length}")
    if container_id + length > MAX_ID_SPAN or host_id + length > MAX_ID_SPAN:
        raise InvalidArgument(f"user namespace {what} mapping runs past the 32-bit ID range")
    return container_id, host_id, length


def validate_userns(config: Mapping[str, Any]) -> str:
    """The pod's user namespace mode: "NODE" (none: also when the request has no UsernsOptions) or "POD".

    CONTAINER and TARGET modes are refused, as is a POD mode without exactly one UID and one GID mapping
    each mapping container ID 0 (the CRI's rules), or a NODE mode that carries mappings.
    """
    options = config.get("linux", {}).get("security_context", {}).get("namespace_options", {})
    userns = options.get("userns_options")
    if userns is None:
        return "NODE"
    mode = str(userns.get("mode", "POD"))
    uids, gids = list(userns.get("uids") or []), list(userns.get("gids") or [])
    if mode == "NODE":
        if uids or gids:
            raise InvalidArgument("user namespace mode NODE takes no ID mappings")
        return "NODE"
    if mode != "POD":
        raise InvalidArgument(f"user namespace mode {mode} is not supported (only POD and NODE)")
    for kind in ("network", "pid", "ipc"):
        if options.get(kind) == "NODE":
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
