"""What one plugin run gets: CNI_ARGS, environment, capability arguments and its stdin config."""

from __future__ import annotations

import json
from typing import Any

import pytest

from crio.core.errors import InvalidArgument
from crio.core.types import PodNetworkRequest
from crio.plugins.cni.conflist import parse_bytes
from crio.plugins.cni.invoke import plugin_config, plugin_env
from crio.plugins.cni.runtimeconf import (
    RuntimeConf,
    capability_args,
    cni_args,
    cni_args_string,
    from_request,
    port_mappings,
    runtime_config,
)

POD_ID = "0123456789abcdef" * 4


def request(**changes: Any) -> PodNetworkRequest:
    fields: dict[str, Any] = {
        "pod_id": POD_ID,
        "name": "web",
        "namespace": "default",
        "uid": "9e0b0d5c-1d2e-4f3a-8b7c-6d5e4f3a2b1c",
        "netns_path": "/var/run/netns/p",
    }
    fields.update(changes)
    return PodNetworkRequest(**fields)


def test_cni_args_are_kubernetes_and_in_order() -> None:
    args = cni_args(request())
    assert cni_args_string(args) == (
        f"IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web;K8S_POD_INFRA_CONTAINER_ID={POD_ID};"
        "K8S_POD_UID=9e0b0d5c-1d2e-4f3a-8b7c-6d5e4f3a2b1c"
    )


@pytest.mark.parametrize("field", ["name", "namespace", "uid"])
def test_cni_args_refuse_separators(field: str) -> None:
    with pytest.raises(InvalidArgument, match="CNI_ARGS"):
        cni_args(request(**{field: "a;B=c"}))


def test_invalid_container_id() -> None:
    with pytest.raises(InvalidArgument, match="not a valid CNI container ID"):
        from_request(request(pod_id="-bad"), "/x")


def test_port_mappings_only_with_host_port() -> None:
    mappings: list[dict[str, Any]] = [
        {"container_port": 80, "host_port": 8080},  # protobuf names, protocol absent: TCP
        {"containerPort": 53, "hostPort": 5353, "protocol": "UDP", "hostIp": "127.0.0.1"},
        {"container_port": 9000, "host_port": 0},  # documentation only
        {"container_port": 132, "host_port": 1132, "protocol": 2, "host_ip": "10.0.0.1"},
    ]
    assert port_mappings(mappings) == [
        {"hostPort": 8080, "containerPort": 80, "protocol": "tcp", "hostIP": ""},
        {"hostPort": 5353, "containerPort": 53, "protocol": "udp", "hostIP": "127.0.0.1"},
        {"hostPort": 1132, "containerPort": 132, "protocol": "sctp", "hostIP": "10.0.0.1"},
    ]
    with pytest.raises(InvalidArgument, match="protocol"):
        port_mappings([{"container_port": 1, "host_port": 1, "protocol": "icmp"}])


def test_capability_args() -> None:
    assert capability_args(request()) == {}
    caps = capability_args(
        request(
            port_mappings=[{"container_port": 80, "host_port": 8080}],
            dns={"servers": ["10.10.10.10"], "searches": ["google.com"], "options": ["ndots:8"]},
            cgroup_parent="/kubepods/pod1",
        )
    )
    assert caps == {
        "portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp", "hostIP": ""}],
        "dns": {"servers": ["10.10.10.10"], "searches": ["google.com"], "options": ["ndots:8"]},
        "cgroupPath": "/kubepods/pod1",
    }


def test_runtime_config_only_declared_capabilities() -> None:
    caps = {"portMappings": [1], "dns": {"servers": ["1.1.1.1"]}}
    assert runtime_config({"type": "portmap", "capabilities": {"portMappings": True}}, caps) == {
        "portMappings": [1]
    }
    assert runtime_config({"type": "x", "capabilities": {"portMappings": False, "dns": True}}, caps) == {
        "dns": {"servers": ["1.1.1.1"]}
    }
    assert runtime_config({"type": "bridge"}, caps) == {}
    assert runtime_config({"type": "x", "capabilities": {"bandwidth": True}}, caps) == {}


def test_plugin_env() -> None:
    rt = RuntimeConf("abc", "/var/run/netns/p", "eth0", (("IgnoreUnknown", "1"), ("A", "b")))
    env = plugin_env("ADD", rt, ["/opt/cni/bin", "/usr/lib/cni"], {"HOME": "/root", "CNI_COMMAND": "DEL"})
    assert env == {
        "HOME": "/root",
        "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "CNI_COMMAND": "ADD",
        "CNI_CONTAINERID": "abc",
        "CNI_NETNS": "/var/run/netns/p",
        "CNI_IFNAME": "eth0",
        "CNI_ARGS": "IgnoreUnknown=1;A=b",
        "CNI_PATH": "/opt/cni/bin:/usr/lib/cni",
    }
    gc_env = plugin_env("GC", None, ["/d"], {"PATH": "/bin"})
    assert gc_env["PATH"] == "/bin" and gc_env["CNI_CONTAINERID"] == "" and gc_env["CNI_COMMAND"] == "GC"


def test_plugin_config_injection() -> None:
    network = parse_bytes(
        json.dumps(
            {
                "cniVersion": "1.0.0",
                "name": "crtest",
                "plugins": [
                    {"type": "bridge", "name": "ignored", "cniVersion": "0.3.1"},
                    {"type": "portmap", "capabilities": {"portMappings": True}},
                ],
            }
        ).encode(),
        "test",
    )
    rt = RuntimeConf("abc", "/n", capability_args={"portMappings": [{"hostPort": 1}]})
    first = plugin_config(network.plugins[0], network, None, rt)
    assert first == {"type": "bridge", "name": "crtest", "cniVersion": "1.0.0"}
    prev = {"cniVersion": "1.0.0", "ips": []}
    second = plugin_config(network.plugins[1], network, prev, rt)
    assert second["prevResult"] == prev
    assert second["runtimeConfig"] == {"portMappings": [{"hostPort": 1}]}
    assert network.plugins[1] == {"type": "portmap", "capabilities": {"portMappings": True}}  # unchanged
