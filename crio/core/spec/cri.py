"""Readers for CRI messages given as dicts.

The dicts come from ``json_format.MessageToDict(message, preserving_proto_field_name=True)``: in that
form default values are omitted, enums are names, int64 fields are strings and crio's wrapper
``Int64Value`` is ``{"value": "1000"}`` (``{}`` for 0, so a present key means "set").
"""

from __future__ import annotations

import posixpath
from collections.abc import Mapping, Sequence
from typing import Any

from crio.core.errors import InvalidArgument

EMPTY: Mapping[str, Any] = {}


def section(message: Mapping[str, Any], *keys: str) -> Mapping[str, Any]:
    """The nested message at ``keys``, or an empty mapping when any level is absent."""
    current: Mapping[str, Any] = message
    for key in keys:
        value = current.get(key)
        if not isinstance(value, Mapping):
            return EMPTY
        current = value
    return current


def int64(message: Mapping[str, Any], key: str, default: int = 0) -> int:
    """An int64 field (a string in JSON form, an int when built by hand); ``default`` when absent."""
    value = message.get(key)
    if value is None:
        return default
    try:
        return int(value)
    except (TypeError, ValueError):
        raise InvalidArgument(f"{key}: {value!r} is not an integer") from None


def wrapped_int64(message: Mapping[str, Any], key: str) -> int | None:
    """An ``Int64Value`` wrapper field: None when unset, else its value (0 when the wrapper is empty)."""
    wrapper = message.get(key)
    if wrapper is None:
        return None
    if not isinstance(wrapper, Mapping):
        raise InvalidArgument(f"{key}: {wrapper!r} is not an Int64Value")
    return int64(wrapper, "value")


def strings(message: Mapping[str, Any], key: str) -> list[str]:
    """A repeated string field, as a list (empty when absent)."""
    value: Sequence[Any] = message.get(key) or ()
    return [str(item) for item in value]


def security_context(config: Mapping[str, Any]) -> Mapping[str, Any]:
    """``linux.security_context`` of a ContainerConfig or a PodSandboxConfig."""
    return section(config, "linux", "security_context")


def namespace_mode(config: Mapping[str, Any], kind: str) -> str:
    """The namespace mode of ``kind`` ("network", "pid", "ipc") in a config: POD (the default), CONTAINER,
    NODE or TARGET."""
    return str(section(security_context(config), "namespace_options").get(kind) or "POD")


def clean_absolute(path: str) -> str:
    """An absolute path in canonical form: one leading slash, no ``.``, ``..`` or repeated slashes."""
    return "/" + posixpath.normpath("/" + path).lstrip("/")
