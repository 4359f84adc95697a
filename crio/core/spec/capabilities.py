"""The container process's capability sets (OCI ``process.capabilities``)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from crio.core.crirecords import Capability
from crio.core.errors import InvalidArgument

ALL = "ALL"
_NAME = re.compile(r"CAP_[A-Z0-9_]+")


def cap_name(name: str) -> str:
    """``net_admin``, ``NET_ADMIN`` or ``CAP_NET_ADMIN`` → ``CAP_NET_ADMIN``; anything else is refused."""
    upper = name.strip().upper()
    full = upper if upper.startswith("CAP_") else "CAP_" + upper
    if not _NAME.fullmatch(full):
        raise InvalidArgument(f"capability {name!r} is not a valid capability name")
    return full


def _names(names: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(cap_name(n) for n in names))


def capability_set(
    capabilities: Capability | None,
    default_caps: Sequence[str],
    bounding_caps: Sequence[str],
    privileged: bool,
) -> list[str]:
    """The bounding/effective/permitted set (``capabilities`` None: the request changes none).

    Privileged: exactly the daemon's bounding set. Otherwise the defaults, replaced by the daemon's bounding
    set when ``ALL`` is added or by nothing when ``ALL`` is dropped; then the other added names are added
    and the other dropped names removed (so "drop ALL, add NET_BIND_SERVICE" keeps only that one).
    """
    if privileged:
        return _names(bounding_caps)
    add = capabilities.add_capabilities if capabilities is not None else ()
    drop = capabilities.drop_capabilities if capabilities is not None else ()
    adds_all = any(n.strip().upper() == ALL for n in add)
    drops_all = any(n.strip().upper() == ALL for n in drop)
    result = _names(bounding_caps) if adds_all else _names(default_caps)
    if drops_all:
        result = []
    result += [n for n in _names(a for a in add if a.strip().upper() != ALL) if n not in result]
    dropped = set(_names(d for d in drop if d.strip().upper() != ALL))
    return [n for n in result if n not in dropped]


def process_capabilities(
    capabilities: Capability | None,
    default_caps: Sequence[str],
    bounding_caps: Sequence[str],
    privileged: bool,
) -> dict[str, list[str]]:
    """OCI ``process.capabilities``: inheritable and ambient are always empty (CVE-2018-1000400,
    CVE-2022-27652), even when the CRI asks for ambient capabilities."""
    caps = capability_set(capabilities, default_caps, bounding_caps, privileged)
    return {
        "bounding": list(caps),
        "effective": list(caps),
        "permitted": list(caps),
        "inheritable": [],
        "ambient": [],
    }
