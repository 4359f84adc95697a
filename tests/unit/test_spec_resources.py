"""Cgroup resources, devices, namespaces and annotations of a container spec."""

from __future__ import annotations

from typing import Any

import pytest

from crio.core.api import api_pb2 as api
from crio.core.crirecords import ContainerConfig, LinuxContainerResources, PodSandboxConfig
from crio.core.errors import FailedPrecondition, InvalidArgument
from crio.core.spec.annotations import split_annotations
from crio.core.spec.defaults import default_device_rules
from crio.core.spec.devices import ALLOW_ALL, container_devices
from crio.core.spec.namespaces import linux_namespaces
from crio.core.spec.resources import NodeFeatures, linux_resources, oom_score_adj
from tests.unit.test_spec_builders import container_config, linux, pod_config

MIB = 1 << 20
ALL_FEATURES = NodeFeatures()
V1_BARE = NodeFeatures(cgroup_v2=False, memory_swap=False, hugetlb=False, pids=False)


def resources(**fields: Any) -> LinuxContainerResources:
    return LinuxContainerResources.from_message(api.LinuxContainerResources(**fields))


# (CRI resources, pids limit, node, expected linux.resources)
RESOURCES: list[tuple[LinuxContainerResources, int, NodeFeatures, dict[str, Any]]] = [
    (resources(), 0, ALL_FEATURES, {}),
    (
        resources(cpu_shares=512, cpu_quota=50000, cpu_period=100000, cpuset_cpus="0-1", cpuset_mems="0"),
        0,
        ALL_FEATURES,
        {"cpu": {"shares": 512, "quota": 50000, "period": 100000, "cpus": "0-1", "mems": "0"}},
    ),
    (resources(cpu_shares=2), 0, ALL_FEATURES, {"cpu": {"shares": 2}}),
    # the critest OOM spec: 15 MiB of memory and of memory+swap
    (
        resources(memory_limit_in_bytes=15 * MIB, memory_swap_limit_in_bytes=15 * MIB),
        0,
        ALL_FEATURES,
        {"memory": {"limit": 15 * MIB, "swap": 15 * MIB}},
    ),
    (
        resources(memory_limit_in_bytes=64 * MIB),
        0,
        ALL_FEATURES,
        {"memory": {"limit": 64 * MIB, "swap": 64 * MIB}},
    ),
    (
        resources(memory_limit_in_bytes=64 * MIB, memory_swap_limit_in_bytes=128 * MIB),
        0,
        ALL_FEATURES,
        {"memory": {"limit": 64 * MIB, "swap": 128 * MIB}},
    ),
    (
        resources(memory_limit_in_bytes=64 * MIB, memory_swap_limit_in_bytes=-1),
        0,
        ALL_FEATURES,
        {"memory": {"limit": 64 * MIB, "swap": -1}},
    ),
    (resources(memory_limit_in_bytes=64 * MIB), 0, V1_BARE, {"memory": {"limit": 64 * MIB}}),
    (resources(memory_swap_limit_in_bytes=64 * MIB), 0, ALL_FEATURES, {}),  # swap alone means nothing
    (resources(), 1024, ALL_FEATURES, {"pids": {"limit": 1024}}),
    (resources(), 1024, V1_BARE, {}),
    (resources(), -1, ALL_FEATURES, {}),
    (
        resources(hugepage_limits=[api.HugepageLimit(page_size="2MB", limit=4 * MIB)]),
        0,
        ALL_FEATURES,
        {"hugepageLimits": [{"pageSize": "2MB", "limit": 4 * MIB}]},
    ),
    (resources(hugepage_limits=[api.HugepageLimit(page_size="2MB", limit=4 * MIB)]), 0, V1_BARE, {}),
    (resources(unified={"memory.high": "100000"}), 0, ALL_FEATURES, {"unified": {"memory.high": "100000"}}),
    (resources(unified={"memory.high": "100000"}), 0, V1_BARE, {}),
]


@pytest.mark.parametrize(("cri", "pids", "node", "expected"), RESOURCES)
def test_linux_resources(
    cri: LinuxContainerResources, pids: int, node: NodeFeatures, expected: dict[str, Any]
) -> None:
    assert linux_resources(cri, pids, node) == expected


def test_no_resources_no_limits() -> None:
    assert linux_resources(None, 0, ALL_FEATURES) == {}


def test_swap_below_memory_is_refused() -> None:
    with pytest.raises(InvalidArgument, match="below memory_limit_in_bytes"):
        linux_resources(
            resources(memory_limit_in_bytes=64 * MIB, memory_swap_limit_in_bytes=MIB), 0, ALL_FEATURES
        )


def with_resources(**fields: Any) -> ContainerConfig:
    return container_config(linux=api.LinuxContainerConfig(resources=api.LinuxContainerResources(**fields)))


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        (container_config(), -999),  # no resources at all: the daemon's own
        (with_resources(), 0),
        (with_resources(oom_score_adj=1000), 1000),
        (with_resources(oom_score_adj=-997), -997),
    ],
)
def test_oom_score_adj(config: ContainerConfig, expected: int) -> None:
    assert oom_score_adj(config, -999) == expected


def dev(path: str, kind: str, major: int, minor: int, permissions: str = "") -> dict[str, Any]:
    """A resolved device as the caller passes it."""
    device: dict[str, Any] = {"path": path, "type": kind, "major": major, "minor": minor, "fileMode": 0o660}
    device |= {"uid": 0, "gid": 6}
    if permissions:
        device["permissions"] = permissions
    return device


def node(device: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in device.items() if k != "permissions"}


FUSE = dev("/dev/fuse", "c", 10, 229, "rw")
XVDA = dev("/dev/xvda", "b", 8, 0)
SOUND = dev("/dev/snd/timer", "u", 116, 33, "r")
PIPE = dev("/dev/initctl", "p", 0, 0)
HOST = [dev("/dev/null", "c", 1, 3), dev("/dev/fuse", "c", 10, 229), dev("/dev/sda", "b", 8, 0)]


def test_unprivileged_devices() -> None:
    nodes, rules = container_devices([FUSE, XVDA, SOUND, PIPE], HOST, privileged=False)
    assert nodes == [node(FUSE), node(XVDA), node(SOUND), node(PIPE)]
    defaults = default_device_rules()
    assert rules[: len(defaults)] == defaults
    assert rules[len(defaults) :] == [
        {"allow": True, "type": "c", "major": 10, "minor": 229, "access": "rw"},
        {"allow": True, "type": "b", "major": 8, "minor": 0, "access": "rwm"},
        {"allow": True, "type": "c", "major": 116, "minor": 33, "access": "r"},
    ]


def test_default_device_rules_deny_first_then_allow_standard_devices() -> None:
    rules = default_device_rules()
    assert rules[0] == {"allow": False, "access": "rwm"}
    allowed = {(r["type"], r["major"], r.get("minor")) for r in rules[1:]}
    standard = {("c", 1, 3), ("c", 1, 5), ("c", 1, 7), ("c", 1, 8), ("c", 1, 9), ("c", 5, 0), ("c", 5, 2)}
    assert allowed == standard | {("c", 136, None)}
    assert container_devices([], HOST, privileged=False) == ([], rules)  # host devices unused


def test_privileged_gets_every_host_device() -> None:
    mine = dev("/dev/fuse", "c", 10, 229, "r") | {"fileMode": 0o600}
    nodes, rules = container_devices([mine, XVDA], HOST, privileged=True)
    assert nodes == [node(HOST[0]), node(mine), node(HOST[2]), node(XVDA)]  # the CRI one wins on its path
    assert rules == [ALLOW_ALL]


@pytest.mark.parametrize(
    ("device", "message"),
    [
        (dev("/dev/x", "c", 1, 1, "rwx"), "invalid permissions"),
        (dev("dev/x", "c", 1, 1), "not an absolute path"),
        (dev("/dev/../x", "c", 1, 1), "'..'"),
        (dev("/dev/x", "d", 1, 1), "unknown type"),
        ({"path": "/dev/x", "type": "c", "major": 1}, "minor is missing"),
        (dev("/dev/x", "c", 1, 1) | {"major": "1"}, "not an integer"),
        (dev("/dev/x", "c", 1, 1) | {"uid": True}, "not an integer"),
    ],
)
def test_bad_devices(device: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        container_devices([device], [], privileged=False)


N = api.NamespaceOption
NS = "/var/run/netns/crio-p1"


def ctr_ns(**options: Any) -> ContainerConfig:
    return container_config(linux=linux(namespace_options=N(**options)))


def pod_ns(**options: Any) -> PodSandboxConfig:
    return pod_config(namespace_options=N(**options))


# (container config, pod config, netns path, expected namespaces)
NAMESPACES: list[tuple[ContainerConfig, PodSandboxConfig, str, list[dict[str, str]]]] = [
    (
        container_config(),
        pod_config(),
        NS,
        [
            {"type": "mount"},
            {"type": "network", "path": NS},
            {"type": "ipc", "path": "/proc/42/ns/ipc"},
            {"type": "uts", "path": "/proc/42/ns/uts"},
            {"type": "pid", "path": "/proc/42/ns/pid"},
        ],
    ),
    (
        ctr_ns(pid=api.CONTAINER),
        pod_ns(pid=api.CONTAINER),
        "",
        [
            {"type": "mount"},
            {"type": "network", "path": "/proc/42/ns/net"},
            {"type": "ipc", "path": "/proc/42/ns/ipc"},
            {"type": "uts", "path": "/proc/42/ns/uts"},
            {"type": "pid"},
        ],
    ),
    (
        ctr_ns(network=api.NODE, ipc=api.NODE, pid=api.NODE),
        pod_ns(network=api.NODE, ipc=api.NODE, pid=api.NODE),
        "",
        [{"type": "mount"}],
    ),
    (ctr_ns(), pod_ns(network=api.NODE, ipc=api.NODE, pid=api.NODE), "", [{"type": "mount"}]),
    (
        ctr_ns(pid=api.TARGET, target_id="other"),
        pod_ns(ipc=api.NODE),
        NS,
        [
            {"type": "mount"},
            {"type": "network", "path": NS},
            {"type": "uts", "path": "/proc/42/ns/uts"},
            {"type": "pid", "path": "/proc/77/ns/pid"},
        ],
    ),
    (
        ctr_ns(pid=api.CONTAINER),
        pod_ns(network=api.NODE),
        "",
        [{"type": "mount"}, {"type": "ipc", "path": "/proc/42/ns/ipc"}, {"type": "pid"}],
    ),
]


@pytest.mark.parametrize(("config", "pod", "netns", "expected"), NAMESPACES)
def test_namespaces(
    config: ContainerConfig, pod: PodSandboxConfig, netns: str, expected: list[dict[str, str]]
) -> None:
    assert linux_namespaces(config, pod, 42, netns, target_pid=77) == expected


def test_namespace_errors() -> None:
    with pytest.raises(InvalidArgument, match="TARGET"):
        linux_namespaces(ctr_ns(pid=api.TARGET), pod_config(), 42, NS)
    with pytest.raises(FailedPrecondition, match="ipc namespace"):
        linux_namespaces(container_config(), pod_config(), 0, NS)
    # nothing to join: fine without an infra process
    assert linux_namespaces(ctr_ns(pid=api.NODE), pod_ns(network=api.NODE, ipc=api.NODE), 0, "") == [
        {"type": "mount"}
    ]


SYSTEMD = "org.systemd.property.ExecStopPost"  # CVE-2024-3154
WASM = "module.wasm.image/variant"
ANNOTATIONS: list[tuple[dict[str, str], dict[str, str], list[str]]] = [
    ({"a": "1", "io.kubernetes.container.hash": "x"}, {"a": "1", "io.kubernetes.container.hash": "x"}, []),
    ({"org.systemd.property.ExecStopPost": "/bin/sh", "ok": "1"}, {"ok": "1"}, [SYSTEMD]),
    ({"Org.Systemd.Property.X": "1"}, {}, ["Org.Systemd.Property.X"]),
    ({"run.oci.keep_original_groups": "1"}, {}, ["run.oci.keep_original_groups"]),
    ({"io.kubernetes.cri-o.Devices": "/dev/sda"}, {}, ["io.kubernetes.cri-o.Devices"]),
    ({"io.kubernetes.cri.container-type": "sandbox"}, {}, ["io.kubernetes.cri.container-type"]),
    ({"cpu-load-balancing.crio.io": "disable"}, {}, ["cpu-load-balancing.crio.io"]),
    ({"org.criu.config": "x", "bundle": "/x", WASM: "compat"}, {}, ["bundle", WASM, "org.criu.config"]),
]


@pytest.mark.parametrize(("given", "kept", "dropped"), ANNOTATIONS)
def test_split_annotations(given: dict[str, str], kept: dict[str, str], dropped: list[str]) -> None:
    assert split_annotations(given) == (kept, dropped)
