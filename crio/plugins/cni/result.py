"""CNI results: spec versions, conversion between the result formats, and the pod's addresses.

Two result shapes exist. Spec 0.1.0/0.2.0: ``{"ip4": {"ip", "gateway", "routes"}, "ip6": {...}, "dns"}``.
Spec 0.3.0 and later: ``{"interfaces": [...], "ips": [{"address", "gateway", "interface"}], "routes", "dns"}``
where 0.3.x/0.4.0 also give each IP a ``"version"`` ("4"/"6") that 1.0.0 dropped. Results are plain dicts.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

DEFAULT_VERSION = "0.1.0"  # what an absent cniVersion means


class ResultError(ValueError):
    """A plugin's result (or a version string) is unusable."""


def parse_version(text: str) -> tuple[int, int, int]:
    """``"1.0.0"`` → ``(1, 0, 0)``; an empty version is 0.1.0. Raises :class:`ResultError`."""
    parts = (text or DEFAULT_VERSION).split(".")
    if len(parts) > 3 or not all(part.isdigit() for part in parts):
        raise ResultError(f"invalid CNI version {text!r}")
    numbers = [int(part) for part in parts] + [0] * (3 - len(parts))
    return numbers[0], numbers[1], numbers[2]


def at_least(version: str, minimum: str) -> bool:
    """True when spec ``version`` is ``minimum`` or newer."""
    return parse_version(version) >= parse_version(minimum)


def _family(address: str) -> str:
    return "6" if ":" in address else "4"


def _legacy_to_current(result: Mapping[str, Any]) -> dict[str, Any]:
    """Spec 0.2.0 shape → 0.3+ shape (with per-IP versions)."""
    ips: list[dict[str, Any]] = []
    routes: list[Any] = []
    for key, family in (("ip4", "4"), ("ip6", "6")):
        config = result.get(key)
        if not isinstance(config, Mapping) or not config.get("ip"):
            continue
        entry: dict[str, Any] = {"version": family, "address": config["ip"]}
        if config.get("gateway"):
            entry["gateway"] = config["gateway"]
        ips.append(entry)
        routes.extend(config.get("routes") or [])
    current: dict[str, Any] = {"ips": ips}
    if routes:
        current["routes"] = routes
    if result.get("dns"):
        current["dns"] = copy.deepcopy(result["dns"])
    return current


def _current_to_legacy(result: Mapping[str, Any]) -> dict[str, Any]:
    """0.3+ shape → spec 0.2.0 shape: the first address of each family, routes split by family."""
    legacy: dict[str, Any] = {}
    for ip in result.get("ips") or []:
        key = "ip" + _family(str(ip.get("address", "")))
        if key in legacy:
            continue
        legacy[key] = {"ip": ip["address"]}
        if ip.get("gateway"):
            legacy[key]["gateway"] = ip["gateway"]
    for route in result.get("routes") or []:
        key = "ip" + _family(str(route.get("dst", "")))
        if key in legacy:
            legacy[key].setdefault("routes", []).append(copy.deepcopy(route))
    if result.get("dns"):
        legacy["dns"] = copy.deepcopy(result["dns"])
    return legacy


def convert(result: Mapping[str, Any], version: str) -> dict[str, Any]:
    """Return ``result`` expressed in spec ``version`` (a new dict; the input is not changed)."""
    if not isinstance(result, Mapping):
        raise ResultError("a CNI result must be a JSON object")
    source = str(result.get("cniVersion", ""))
    target = parse_version(version)
    current = _legacy_to_current(result) if parse_version(source) < (0, 3, 0) else copy.deepcopy(dict(result))
    if target < (0, 3, 0):
        converted = _current_to_legacy(current)
    else:
        for ip in current.get("ips") or []:
            if target >= (1, 0, 0):
                ip.pop("version", None)
            else:
                ip.setdefault("version", _family(str(ip.get("address", ""))))
        converted = current
    converted["cniVersion"] = version
    return converted


def pod_ips(result: Mapping[str, Any]) -> list[str]:
    """The pod's addresses (without prefix length) in the result's order, first is the primary.

    Addresses assigned to host-side interfaces (an ``interface`` index whose entry has no ``sandbox``)
    are left out.
    """
    if parse_version(str(result.get("cniVersion", ""))) < (0, 3, 0):
        result = _legacy_to_current(result)
    interfaces = result.get("interfaces") or []
    found: list[str] = []
    for ip in result.get("ips") or []:
        index = ip.get("interface")
        if isinstance(index, int) and 0 <= index < len(interfaces):
            interface = interfaces[index]
            if isinstance(interface, Mapping) and not interface.get("sandbox"):
                continue
        address = str(ip.get("address", "")).split("/", 1)[0]
        if address and address not in found:
            found.append(address)
    return found
