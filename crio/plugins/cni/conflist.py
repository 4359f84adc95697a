"""CNI network configuration files as libcni reads them: ``*.conflist`` lists, ``*.conf``/``*.json`` singles.

Pure functions: parse and validate a directory's files (or cached bytes) and pick the network to use.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

CONFIG_EXTENSIONS = (".conf", ".conflist", ".json")


class ConflistError(Exception):
    """A network configuration file is unusable; the message names the file and the problem."""


@dataclass(frozen=True)
class NetworkConfigList:
    """One CNI network: its name, cniVersion, plugin configs (in chain order) and source file.

    ``data`` is the list's JSON as libcni caches it: the file's bytes for a ``.conflist``, a generated
    list holding the one plugin for a single-plugin file.
    """

    name: str
    cni_version: str
    plugins: tuple[dict[str, Any], ...]
    path: str
    disable_check: bool = False
    raw: dict[str, Any] = field(default_factory=dict)
    data: bytes = b""


def parse_file(path: str) -> NetworkConfigList:
    """Parse one config file; a single-plugin ``.conf`` becomes a one-element list, as libcni does."""
    try:
        with open(path, "rb") as handle:
            content = handle.read()
    except OSError as exc:
        raise ConflistError(f"{path}: cannot parse: {exc}") from None
    return parse_bytes(content, path, single=not path.endswith(".conflist"))


def parse_bytes(content: bytes, path: str, single: bool = False) -> NetworkConfigList:
    """Parse a network config list (or, with ``single``, one plugin's config) from ``content``.

    ``path`` names the source in errors (a file, or e.g. the cache entry the bytes come from).
    """
    try:
        data = json.loads(content)
    except ValueError as exc:
        raise ConflistError(f"{path}: cannot parse: {exc}") from None
    if not isinstance(data, dict):
        raise ConflistError(f"{path}: expected a JSON object")
    if not single:
        plugins = data.get("plugins")
        if not isinstance(plugins, list) or not plugins:
            raise ConflistError(f"{path}: 'plugins' must be a non-empty list")
    else:
        if "type" not in data:
            raise ConflistError(f"{path}: a single-plugin config needs a 'type'")
        plugins = [data]
    name = data.get("name")
    if not isinstance(name, str) or not name:
        raise ConflistError(f"{path}: missing network 'name'")
    version = data.get("cniVersion", "")
    if not isinstance(version, str):
        raise ConflistError(f"{path}: 'cniVersion' must be a string")
    for index, plugin in enumerate(plugins):
        if not isinstance(plugin, dict) or not isinstance(plugin.get("type"), str) or not plugin["type"]:
            raise ConflistError(f"{path}: plugin #{index} has no 'type'")
        if "/" in plugin["type"] or plugin["type"] in (".", ".."):
            raise ConflistError(f"{path}: plugin #{index} type {plugin['type']!r} is not a plugin name")
    if single:
        content = json.dumps({"cniVersion": version, "name": name, "plugins": plugins}).encode()
    return NetworkConfigList(
        name=name,
        cni_version=version,
        plugins=tuple(plugins),
        path=path,
        disable_check=_flag(data.get("disableCheck", False)),
        raw=data,
        data=content,
    )


def _flag(value: Any) -> bool:
    """A boolean config field; libcni also accepts the strings "true"/"false"."""
    if isinstance(value, str):
        return value.strip().lower() == "true"
    return bool(value)


def config_files(directory: str) -> list[str]:
    """Return the directory's CNI config files in lexical order (libcni's order)."""
    try:
        names = sorted(os.listdir(directory))
    except OSError:
        return []
    return [os.path.join(directory, n) for n in names if n.endswith(CONFIG_EXTENSIONS)]


def find_plugin(plugin_type: str, plugin_dirs: Sequence[str]) -> str | None:
    """Return the executable for ``plugin_type`` in the first plugin dir that has it, or None."""
    for directory in plugin_dirs:
        candidate = os.path.join(directory, plugin_type)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None


def select_network(
    directory: str, plugin_dirs: Sequence[str], wanted: str = ""
) -> tuple[NetworkConfigList | None, list[str]]:
    """Pick the network to use: the first usable file by name, or the one named ``wanted``.

    Returns the network (None if none is usable) and the problems found on the way, one per file.
    """
    problems: list[str] = []
    for path in config_files(directory):
        try:
            network = parse_file(path)
        except ConflistError as exc:
            problems.append(str(exc))
            continue
        if wanted and network.name != wanted:
            continue
        missing = [p["type"] for p in network.plugins if find_plugin(p["type"], plugin_dirs) is None]
        if missing:
            searched = ", ".join(plugin_dirs) or "no plugin dir"
            problems.append(f"{path}: plugin(s) {', '.join(missing)} not found in {searched}")
            continue
        return network, problems
    return None, problems
