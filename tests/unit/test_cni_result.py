"""CNI results: spec versions, conversions between result formats, and the pod's addresses."""

from __future__ import annotations

from typing import Any

import pytest

from crio.plugins.cni.result import ResultError, at_least, convert, parse_version, pod_ips

BRIDGE_100: dict[str, Any] = {
    "cniVersion": "1.0.0",
    "interfaces": [
        {"name": "crtest0", "mac": "aa:aa:aa:aa:aa:01"},
        {"name": "veth1", "mac": "aa:aa:aa:aa:aa:02"},
        {"name": "eth0", "mac": "aa:aa:aa:aa:aa:03", "sandbox": "/var/run/netns/p"},
    ],
    "ips": [
        {"interface": 2, "address": "10.99.0.5/16", "gateway": "10.99.0.1"},
        {"interface": 2, "address": "fd00::5/64", "gateway": "fd00::1"},
        {"interface": 0, "address": "10.99.0.1/16"},
    ],
    "routes": [{"dst": "0.0.0.0/0"}, {"dst": "::/0"}],
    "dns": {"nameservers": ["10.0.0.10"]},
}


@pytest.mark.parametrize(
    ("text", "parsed"),
    [("1.0.0", (1, 0, 0)), ("0.4.0", (0, 4, 0)), ("1.1", (1, 1, 0)), ("", (0, 1, 0))],
)
def test_parse_version(text: str, parsed: tuple[int, int, int]) -> None:
    assert parse_version(text) == parsed


@pytest.mark.parametrize("text", ["1.0.0-rc1", "a.b", "1.2.3.4", "v1"])
def test_parse_version_rejects(text: str) -> None:
    with pytest.raises(ResultError):
        parse_version(text)


def test_at_least() -> None:
    assert at_least("1.0.0", "0.4.0")
    assert at_least("0.4.0", "0.4.0")
    assert not at_least("0.3.1", "0.4.0")
    assert not at_least("", "0.3.0")
    assert at_least("1.1.0", "1.1.0") and not at_least("1.0.0", "1.1.0")


def test_pod_ips_skip_host_interfaces_and_keep_order() -> None:
    assert pod_ips(BRIDGE_100) == ["10.99.0.5", "fd00::5"]


def test_pod_ips_without_interfaces_and_legacy() -> None:
    assert pod_ips({"cniVersion": "1.0.0", "ips": [{"address": "10.1.0.2/24"}]}) == ["10.1.0.2"]
    legacy = {"cniVersion": "0.2.0", "ip4": {"ip": "10.1.0.2/24"}, "ip6": {"ip": "fd00::2/64"}}
    assert pod_ips(legacy) == ["10.1.0.2", "fd00::2"]
    assert pod_ips({"cniVersion": "1.0.0"}) == []


def test_convert_100_to_040_adds_ip_versions() -> None:
    converted = convert(BRIDGE_100, "0.4.0")
    assert converted["cniVersion"] == "0.4.0"
    assert [ip["version"] for ip in converted["ips"]] == ["4", "6", "4"]
    assert converted["interfaces"] == BRIDGE_100["interfaces"]
    assert "version" not in BRIDGE_100["ips"][0]  # the input is not changed


def test_convert_031_to_100_drops_ip_versions() -> None:
    old = {"cniVersion": "0.3.1", "ips": [{"version": "4", "address": "10.1.0.2/24", "interface": 0}]}
    assert convert(old, "1.0.0") == {
        "cniVersion": "1.0.0",
        "ips": [{"address": "10.1.0.2/24", "interface": 0}],
    }


def test_convert_legacy_both_ways() -> None:
    legacy = {
        "cniVersion": "0.2.0",
        "ip4": {"ip": "10.1.0.2/24", "gateway": "10.1.0.1", "routes": [{"dst": "0.0.0.0/0"}]},
        "dns": {"nameservers": ["1.1.1.1"]},
    }
    current = convert(legacy, "1.0.0")
    assert current == {
        "cniVersion": "1.0.0",
        "ips": [{"address": "10.1.0.2/24", "gateway": "10.1.0.1"}],
        "routes": [{"dst": "0.0.0.0/0"}],
        "dns": {"nameservers": ["1.1.1.1"]},
    }
    back = convert(BRIDGE_100, "0.2.0")
    assert back == {
        "cniVersion": "0.2.0",
        "ip4": {"ip": "10.99.0.5/16", "gateway": "10.99.0.1", "routes": [{"dst": "0.0.0.0/0"}]},
        "ip6": {"ip": "fd00::5/64", "gateway": "fd00::1", "routes": [{"dst": "::/0"}]},
        "dns": {"nameservers": ["10.0.0.10"]},
    }


def test_convert_rejects_non_objects() -> None:
    with pytest.raises(ResultError):
        convert([], "1.0.0")  # type: ignore[arg-type]
