"""Capability sets: defaults, add/drop, ALL, privileged; inheritable and ambient always empty."""

from __future__ import annotations

import pytest

from crio.core.api import api_pb2 as api
from crio.core.errors import InvalidArgument
from crio.core.spec.capabilities import cap_name, capability_set, process_capabilities
from tests.unit.test_spec_builders import BOUNDING, DEFAULT_CAPS, record

DEFAULTS = ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_KILL", "CAP_NET_RAW"]

# (add, drop, privileged, expected set)
CASES: list[tuple[list[str], list[str], bool, list[str]]] = [
    ([], [], False, DEFAULTS),
    (["NET_ADMIN"], [], False, [*DEFAULTS, "CAP_NET_ADMIN"]),
    (["cap_net_admin", "NET_ADMIN"], [], False, [*DEFAULTS, "CAP_NET_ADMIN"]),
    ([], ["NET_RAW"], False, ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_KILL"]),
    (["ALL"], [], False, list(BOUNDING)),
    (["all"], ["SYS_ADMIN"], False, [c for c in BOUNDING if c != "CAP_SYS_ADMIN"]),
    ([], ["ALL"], False, []),
    (["NET_BIND_SERVICE"], ["ALL"], False, ["CAP_NET_BIND_SERVICE"]),
    (["ALL"], ["ALL"], False, []),
    ([], [], True, list(BOUNDING)),
    (["SYSLOG"], ["ALL"], True, list(BOUNDING)),  # privileged ignores add and drop
]


@pytest.mark.parametrize(("add", "drop", "privileged", "expected"), CASES)
def test_capability_set(add: list[str], drop: list[str], privileged: bool, expected: list[str]) -> None:
    caps = record(api.Capability(add_capabilities=add, drop_capabilities=drop))
    assert capability_set(caps, DEFAULT_CAPS, BOUNDING, privileged) == expected


@pytest.mark.parametrize("privileged", [False, True])
def test_inheritable_and_ambient_are_always_empty(privileged: bool) -> None:
    caps = record(api.Capability(add_capabilities=["ALL"], add_ambient_capabilities=["NET_ADMIN"]))
    result = process_capabilities(caps, DEFAULT_CAPS, BOUNDING, privileged)
    assert result["inheritable"] == [] and result["ambient"] == []
    assert result["bounding"] == result["effective"] == result["permitted"] == list(BOUNDING)


@pytest.mark.parametrize("name", ["", "NET ADMIN", "CAP_", "net-admin", "CAP_Ünï"])
def test_bad_names(name: str) -> None:
    with pytest.raises(InvalidArgument, match="capability"):
        cap_name(name)
