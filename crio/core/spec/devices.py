"""The container's device nodes (OCI ``linux.devices``) and device cgroup rules
(``linux.resources.devices``), from devices the caller has already looked up on the host (stat is I/O).

A device is a mapping in OCI ``linux.devices`` form ("path" in the container, "type" "c"/"b"/"u"/"p",
"major", "minor", and optionally "fileMode", "uid", "gid"), plus "permissions" ("rwm" letters, default
all three) for the cgroup rule.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from crio.core.errors import InvalidArgument
from crio.core.spec.defaults import default_device_rules
from crio.core.spec.mounts import clean_container_path

PERMISSIONS = frozenset("rwm")
TYPES = ("c", "b", "u", "p")
ALLOW_ALL: dict[str, Any] = {"allow": True, "access": "rwm"}
_OCI_FIELDS = ("path", "type", "major", "minor", "fileMode", "uid", "gid")


def permissions(device: Mapping[str, Any]) -> str:
    """A device's cgroup permissions in "rwm" order; all three when empty."""
    value = str(device.get("permissions") or "rwm")
    if not set(value) <= PERMISSIONS:
        raise InvalidArgument(f"device {device.get('path')!r}: invalid permissions {value!r}")
    return "".join(p for p in "rwm" if p in value)


def device_node(device: Mapping[str, Any]) -> dict[str, Any]:
    """The OCI ``linux.devices`` entry of a device, checked: absolute path without "..", known type,
    integer numbers."""
    path = clean_container_path(str(device.get("path") or ""))
    kind = device.get("type")
    if kind not in TYPES:
        raise InvalidArgument(f"device {path}: unknown type {kind!r}")
    node: dict[str, Any] = {"path": path, "type": kind}
    for key in _OCI_FIELDS[2:]:
        value = device.get(key)
        if value is None and key in ("major", "minor"):
            raise InvalidArgument(f"device {path}: {key} is missing")
        if value is not None:
            if isinstance(value, bool) or not isinstance(value, int):
                raise InvalidArgument(f"device {path}: {key} {value!r} is not an integer")
            node[key] = value
    return node


def device_rule(node: Mapping[str, Any], access: str) -> dict[str, Any]:
    """The device cgroup rule allowing ``access`` to a device node ("u" counts as a character device)."""
    kind = "c" if node["type"] == "u" else node["type"]
    return {"allow": True, "type": kind, "major": node["major"], "minor": node["minor"], "access": access}


def container_devices(
    devices: Sequence[Mapping[str, Any]], host_devices: Sequence[Mapping[str, Any]], privileged: bool
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(``linux.devices``, ``linux.resources.devices``).

    ``devices`` are the container's CRI devices, resolved; ``host_devices`` every device of the host (used
    only when privileged). Privileged: all host devices plus the CRI ones (a CRI device wins on the same
    path), and access to every device. Otherwise: the CRI devices, and the default rules (deny all, allow
    the standard character devices) plus one rule per CRI device with its permissions. FIFOs get no rule.
    """
    nodes: dict[str, dict[str, Any]] = {}
    rules = [dict(ALLOW_ALL)] if privileged else default_device_rules()
    if privileged:
        for device in host_devices:
            node = device_node(device)
            nodes[node["path"]] = node
    for device in devices:
        node = device_node(device)
        access = permissions(device)
        nodes[node["path"]] = node
        if not privileged and node["type"] != "p":
            rules.append(device_rule(node, access))
    return list(nodes.values()), rules
