"""What one CNI invocation is about besides the network config: libcni's ``RuntimeConf``.

Built from a :class:`crio.core.types.PodNetworkRequest`: the container ID (the pod's ID), the namespace
path, the interface name, the ``CNI_ARGS`` pairs Kubernetes runtimes pass, and the capability arguments
(``portMappings``, ``dns``, ``cgroupPath``) that reach a plugin's ``runtimeConfig`` when it declares them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from crio.core.errors import InvalidArgument
from crio.core.types import PodNetworkRequest

IFNAME = "eth0"
_ID_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.\-]*$")  # CNI's rule for container IDs and network names
_PROTOCOLS = {0: "tcp", 1: "udp", 2: "sctp"}  # the CRI Protocol enum


@dataclass(frozen=True)
class RuntimeConf:
    """Per-invocation arguments: ``CNI_CONTAINERID``, ``CNI_NETNS``, ``CNI_IFNAME``, ``CNI_ARGS``, caps."""

    container_id: str
    netns: str
    ifname: str = IFNAME
    args: tuple[tuple[str, str], ...] = ()
    capability_args: Mapping[str, Any] = field(default_factory=dict)


def valid_id(text: str) -> bool:
    """True for a usable CNI container ID or network name."""
    return bool(_ID_RE.match(text))


def cni_args(request: PodNetworkRequest) -> tuple[tuple[str, str], ...]:
    """The ``CNI_ARGS`` pairs of a Kubernetes pod, in the order CRI-O passes them."""
    pairs = (
        ("IgnoreUnknown", "1"),
        ("K8S_POD_NAMESPACE", request.namespace),
        ("K8S_POD_NAME", request.name),
        ("K8S_POD_INFRA_CONTAINER_ID", request.pod_id),
        ("K8S_POD_UID", request.uid),
    )
    for key, value in pairs:
        if any(c in value for c in ";=\0\n"):
            raise InvalidArgument(f"pod {key} {value!r} cannot be passed in CNI_ARGS")
    return pairs


def cni_args_string(args: Sequence[Sequence[str]]) -> str:
    """``CNI_ARGS``: ``KEY=VALUE`` pairs joined by semicolons."""
    return ";".join(f"{key}={value}" for key, value in args)


def _first(mapping: Mapping[str, Any], *keys: str, default: Any = None) -> Any:
    """The value of the first of ``keys`` present (CRI JSON names or protobuf field names)."""
    for key in keys:
        if key in mapping and mapping[key] is not None:
            return mapping[key]
    return default


def _protocol(value: Any) -> str:
    if isinstance(value, int):
        if value not in _PROTOCOLS:
            raise InvalidArgument(f"unknown port mapping protocol {value}")
        return _PROTOCOLS[value]
    text = str(value).strip().lower() or "tcp"
    if text not in _PROTOCOLS.values():
        raise InvalidArgument(f"unknown port mapping protocol {value!r}")
    return text


def port_mappings(mappings: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The ``portMappings`` capability: one entry per CRI port mapping that has a host port.

    Accepts CRI's JSON names (``hostPort``, ``containerPort``, ``hostIp``) or protobuf field names
    (``host_port``, ``container_port``, ``host_ip``); ``protocol`` as the enum's name or number (absent:
    TCP). Mappings without a host port (``hostPort`` 0) only document the container port and are skipped.
    """
    entries: list[dict[str, Any]] = []
    for mapping in mappings:
        host_port = int(_first(mapping, "hostPort", "host_port", default=0))
        if host_port <= 0:
            continue
        entries.append(
            {
                "hostPort": host_port,
                "containerPort": int(_first(mapping, "containerPort", "container_port", default=0)),
                "protocol": _protocol(_first(mapping, "protocol", default="tcp")),
                "hostIP": str(_first(mapping, "hostIP", "hostIp", "host_ip", default="")),
            }
        )
    return entries


def dns_capability(dns: Mapping[str, Any]) -> dict[str, list[str]]:
    """The ``dns`` capability (``servers``, ``searches``, ``options``); empty when the pod sets none."""
    result = {key: [str(v) for v in dns.get(key) or []] for key in ("servers", "searches", "options")}
    return result if any(result.values()) else {}


def capability_args(request: PodNetworkRequest) -> dict[str, Any]:
    """Every capability argument crio can offer for ``request``; plugins get those they declare."""
    caps: dict[str, Any] = {}
    mappings = port_mappings(request.port_mappings)
    if mappings:
        caps["portMappings"] = mappings
    dns = dns_capability(request.dns)
    if dns:
        caps["dns"] = dns
    if request.cgroup_parent:
        caps["cgroupPath"] = request.cgroup_parent
    return caps


def from_request(request: PodNetworkRequest, netns: str, ifname: str = IFNAME) -> RuntimeConf:
    """The RuntimeConf for attaching (or detaching) ``request``'s pod with namespace path ``netns``."""
    if not valid_id(request.pod_id):
        raise InvalidArgument(f"pod ID {request.pod_id!r} is not a valid CNI container ID")
    return RuntimeConf(request.pod_id, netns, ifname, cni_args(request), capability_args(request))


def runtime_config(plugin: Mapping[str, Any], caps: Mapping[str, Any]) -> dict[str, Any]:
    """The ``runtimeConfig`` for ``plugin``: the capability args whose names it declares as true."""
    declared = plugin.get("capabilities")
    if not isinstance(declared, Mapping):
        return {}
    return {name: caps[name] for name, wanted in declared.items() if wanted is True and name in caps}
