"""CRI records: message → record → dict → record round trips, the dict form crio persisted before records
existed, absent versus default messages, and malformed dicts."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

import pytest
from google.protobuf import json_format
from google.protobuf.message import Message

from crio.core import crirecords as cri
from crio.core.api import api_pb2 as api
from crio.core.containers.model import Container
from crio.core.sandbox.model import Sandbox, config_digest


def message_dict(message: Message) -> dict[str, Any]:
    """What crio wrote before records (and still writes): MessageToDict with proto field names."""
    return json_format.MessageToDict(message, preserving_proto_field_name=True)


RICH_POD = api.PodSandboxConfig(
    metadata=api.PodSandboxMetadata(name="web", uid="u-1", namespace="ns", attempt=3),
    hostname="web-0",
    log_directory="/var/log/pods/ns_web_u-1",
    dns_config=api.DNSConfig(servers=["10.0.0.10"], searches=["svc.cluster.local"], options=["ndots:5"]),
    port_mappings=[
        api.PortMapping(container_port=80, host_port=8080, host_ip="127.0.0.1"),
        api.PortMapping(protocol=api.UDP, container_port=53),
    ],
    labels={"app": "web", "empty": ""},
    annotations={"a": "1"},
    linux=api.LinuxPodSandboxConfig(
        cgroup_parent="/kubepods/pod1",
        security_context=api.LinuxSandboxSecurityContext(
            namespace_options=api.NamespaceOption(
                network=api.NODE,
                pid=api.CONTAINER,
                userns_options=api.UserNamespace(
                    mode=api.POD,
                    uids=[api.IDMapping(host_id=100000, container_id=0, length=65536)],
                    gids=[api.IDMapping(host_id=100000, container_id=0, length=65536)],
                ),
            ),
            selinux_options=api.SELinuxOption(user="u", role="r", type="t", level="s0:c1,c2"),
            run_as_user=api.Int64Value(value=1000),
            run_as_group=api.Int64Value(),  # present, 0
            readonly_rootfs=True,
            supplemental_groups=[5, 1 << 40],
            supplemental_groups_policy=api.Strict,
            privileged=True,
            seccomp=api.SecurityProfile(profile_type=api.SecurityProfile.Localhost, localhost_ref="/p.json"),
            apparmor=api.SecurityProfile(),  # present, RuntimeDefault
            seccomp_profile_path="runtime/default",
        ),
        sysctls={"net.core.somaxconn": "1024"},
        overhead=api.LinuxContainerResources(cpu_shares=10),
        resources=api.LinuxContainerResources(memory_limit_in_bytes=1 << 33),
    ),
)
RESOURCES = api.LinuxContainerResources(
    cpu_period=100000,
    cpu_quota=-1,
    cpu_shares=1024,
    memory_limit_in_bytes=1 << 40,
    oom_score_adj=-997,
    cpuset_cpus="0-3",
    cpuset_mems="0",
    hugepage_limits=[api.HugepageLimit(page_size="2MB", limit=1 << 35)],
    unified={"memory.high": "1000000"},
    memory_swap_limit_in_bytes=1 << 41,
)
RICH_CONTAINER = api.ContainerConfig(
    metadata=api.ContainerMetadata(name="app", attempt=1),
    image=api.ImageSpec(image="busybox:1.36", annotations={"k": "v"}, user_specified_image="busybox"),
    command=["/bin/sh", "-c"],
    args=["echo hi"],
    working_dir="/srv",
    envs=[
        api.KeyValue(key="A", value=b"1"),
        api.KeyValue(key="BIN", value=b"\x00\xff"),
        api.KeyValue(key="E"),
    ],
    mounts=[
        api.Mount(container_path="/data", host_path="/srv/data", readonly=True, selinux_relabel=True),
        api.Mount(container_path="/shared", host_path="/mnt", propagation=api.PROPAGATION_BIDIRECTIONAL),
        api.Mount(
            container_path="/vol",
            readonly=True,
            image=api.ImageSpec(image="quay.io/x/data:1"),
            image_sub_path="sub",
            uidMappings=[api.IDMapping(host_id=1, container_id=0, length=1)],
            mount_options=["nodev"],
            recursive_read_only=True,
        ),
    ],
    devices=[api.Device(container_path="/dev/fuse", host_path="/dev/fuse", permissions="rw")],
    labels={"io.kubernetes.container.name": "app"},
    annotations={"io.kubernetes.container.hash": "abc"},
    log_path="app/1.log",
    stdin=True,
    stdin_once=True,
    tty=True,
    linux=api.LinuxContainerConfig(
        resources=RESOURCES,
        security_context=api.LinuxContainerSecurityContext(
            capabilities=api.Capability(
                add_capabilities=["NET_ADMIN"], drop_capabilities=["ALL"], add_ambient_capabilities=["X"]
            ),
            privileged=False,
            namespace_options=api.NamespaceOption(pid=api.TARGET, target_id="c0ffee"),
            selinux_options=api.SELinuxOption(level="s0"),
            run_as_user=api.Int64Value(value=0),
            run_as_username="www-data",
            readonly_rootfs=True,
            supplemental_groups=[1, 2],
            no_new_privs=True,
            masked_paths=["/proc/kcore"],
            readonly_paths=[],
            seccomp=api.SecurityProfile(profile_type=api.SecurityProfile.Unconfined),
            apparmor_profile="localhost/p",
            seccomp_profile_path="unconfined",
        ),
    ),
    CDI_devices=[api.CDIDevice(name="vendor.com/gpu=0")],
    stop_signal=api.SIGNAL_SIGQUIT,
)
ROUND_TRIPS = [
    (cri.PodSandboxConfig, RICH_POD),
    (cri.ContainerConfig, RICH_CONTAINER),
    (cri.LinuxContainerResources, RESOURCES),
    (cri.PodSandboxConfig, api.PodSandboxConfig()),
    (cri.ContainerConfig, api.ContainerConfig(linux=api.LinuxContainerConfig())),
]


@pytest.mark.parametrize(("record", "message"), ROUND_TRIPS)
def test_message_record_dict_round_trip(record: type[cri.Record], message: Message) -> None:
    typed = record.from_message(message)
    as_dict = typed.to_dict()
    assert as_dict == message_dict(message)  # exactly the form crio wrote before records
    assert record.from_dict(as_dict) == typed
    assert record.from_dict(json.loads(json.dumps(as_dict))) == typed  # through a JSON file
    assert json_format.ParseDict(as_dict, type(message)()) == message


@pytest.mark.parametrize("name", sorted(cri.RECORDS))
def test_every_record_matches_its_message(name: str) -> None:
    """Field names and wire types agree with the generated stubs; the defaults are the proto defaults."""
    record = cri.RECORDS[name]
    message = getattr(api, name)()
    assert record().to_dict() == {}
    assert record.from_message(message) == record()
    assert record.from_dict({}) == record()
    proto_fields = set(message.DESCRIPTOR.fields_by_name)
    assert {f for f in record.__dataclass_fields__} <= proto_fields  # type: ignore[attr-defined]


def test_windows_settings_are_left_out() -> None:
    message = api.PodSandboxConfig(
        metadata=api.PodSandboxMetadata(name="p"), windows=api.WindowsPodSandboxConfig()
    )
    assert cri.PodSandboxConfig.from_message(message).to_dict() == {"metadata": {"name": "p"}}


def test_typed_values() -> None:
    pod = cri.PodSandboxConfig.from_message(RICH_POD)
    assert pod.metadata == cri.PodSandboxMetadata(name="web", uid="u-1", namespace="ns", attempt=3)
    assert pod.port_mappings[1] == cri.PortMapping(protocol="UDP", container_port=53)
    assert pod.port_mappings[0].protocol == "TCP"
    context = pod.security_context
    assert context.run_as_user == 1000 and context.run_as_group == 0
    assert context.supplemental_groups == (5, 1 << 40)
    assert context.supplemental_groups_policy == "Strict"
    assert context.seccomp == cri.SecurityProfile("Localhost", "/p.json")
    assert context.apparmor == cri.SecurityProfile("RuntimeDefault")
    assert pod.namespace_options.network == cri.NODE and pod.namespace_options.ipc == cri.POD
    assert pod.sysctls == {"net.core.somaxconn": "1024"} and pod.cgroup_parent == "/kubepods/pod1"
    container = cri.ContainerConfig.from_message(RICH_CONTAINER)
    assert container.envs[1].value == b"\x00\xff"
    assert container.mounts[1].propagation == "PROPAGATION_BIDIRECTIONAL"
    assert container.mounts[0].propagation == "PROPAGATION_PRIVATE"
    assert container.mounts[2].image == cri.ImageSpec(image="quay.io/x/data:1")
    assert container.resources is not None and container.resources.hugepage_limits[0].limit == 1 << 35
    assert container.security_context.run_as_user == 0 and container.security_context.run_as_group is None
    assert container.namespace_options == cri.NamespaceOption(pid=cri.TARGET, target_id="c0ffee")
    assert container.stop_signal == "SIGNAL_SIGQUIT"


# A pod's config as crio wrote it in sandbox.json before records (MessageToDict): int64 as strings, enums
# as names, absent fields missing, an Int64Value of 0 as {}.
OLD_POD_CONFIG: dict[str, Any] = {
    "metadata": {
        "name": "podsandbox1",
        "uid": "redhat-test-ocid",
        "namespace": "redhat.test.ocid",
        "attempt": 1,
    },
    "hostname": "ocic_host",
    "log_directory": "/var/log/crio/pods/podsandbox1",
    "dns_config": {"servers": ["8.8.8.8"], "searches": ["example.com"], "options": ["ndots:3"]},
    "port_mappings": [{"container_port": 6379, "host_port": 16379}],
    "labels": {"group": "test"},
    "annotations": {"owner": "hmeng"},
    "linux": {
        "cgroup_parent": "/pod_123-456",
        "security_context": {
            "namespace_options": {"pid": "CONTAINER"},
            "run_as_user": {"value": "1000"},
            "run_as_group": {},
            "supplemental_groups": ["100", "4294967296"],
            "seccomp": {"profile_type": "Localhost", "localhost_ref": "profile.json"},
        },
        "sysctls": {"net.ipv4.ip_unprivileged_port_start": "0"},
        "resources": {"cpu_shares": "512", "memory_limit_in_bytes": "1073741824"},
    },
}
OLD_SANDBOX_JSON: dict[str, Any] = {
    "cgroup_parent": "/pod_123-456",
    "config": OLD_POD_CONFIG,
    "config_digest": "d" * 64,
    "created_at": 1700000000000000000,
    "files": {"hostname": "/x/hostname"},
    "gid_mappings": [],
    "hostname": "ocic_host",
    "id": "a" * 64,
    "infra_pid": 4242,
    "ips": ["10.89.0.7"],
    "name": "k8s_POD_podsandbox1_redhat.test.ocid_redhat-test-ocid_1",
    "netns_path": "/var/run/netns/crio-aaaa",
    "network_attached": True,
    "runtime_handler": "runc",
    "shm_path": "/run/shm",
    "state": "ready",
    "uid_mappings": [],
    "userns_path": "",
    "some_field_of_a_newer_crio": {"ignored": True},
}
OLD_CONTAINER_JSON: dict[str, Any] = {
    "config": {
        "metadata": {"name": "redis"},
        "image": {"image": "quay.io/crio/redis:alpine"},
        "command": ["docker-entrypoint.sh"],
        "envs": [{"key": "PATH", "value": "L3Vzci9iaW4="}],
        "mounts": [
            {"container_path": "/data", "host_path": "/srv", "propagation": "PROPAGATION_HOST_TO_CONTAINER"}
        ],
        "log_path": "redis/0.log",
        "tty": True,
        "linux": {
            "resources": {"cpu_quota": "20000", "oom_score_adj": "30"},
            "security_context": {"capabilities": {"drop_capabilities": ["ALL"]}, "run_as_user": {}},
        },
    },
    "created_at": 1700000000000000000,
    "id": "c" * 64,
    "image": "quay.io/crio/redis:alpine",
    "image_id": "f" * 64,
    "image_name": "quay.io/crio/redis:alpine",
    "log_path": "/var/log/crio/pods/podsandbox1/redis/0.log",
    "name": "k8s_redis_podsandbox1_redhat.test.ocid_redhat-test-ocid_0",
    "pod_id": "a" * 64,
    "runtime_handler": "runc",
    "state": "running",
    "pid": 77,
    "user": {"uid": 0, "gid": 0, "supplemental_groups": [0]},
}


def test_old_pod_config_form_loads() -> None:
    pod = cri.PodSandboxConfig.from_dict(OLD_POD_CONFIG)
    assert pod.metadata.attempt == 1 and pod.metadata.namespace == "redhat.test.ocid"
    assert pod.port_mappings == (cri.PortMapping(protocol="TCP", container_port=6379, host_port=16379),)
    assert pod.dns_config == cri.DNSConfig(("8.8.8.8",), ("example.com",), ("ndots:3",))
    context = pod.security_context
    assert (context.run_as_user, context.run_as_group) == (1000, 0)
    assert context.supplemental_groups == (100, 1 << 32)
    assert context.seccomp == cri.SecurityProfile("Localhost", "profile.json") and context.apparmor is None
    assert pod.namespace_options == cri.NamespaceOption(pid="CONTAINER")
    assert pod.linux is not None and pod.linux.resources == cri.LinuxContainerResources(
        cpu_shares=512, memory_limit_in_bytes=1 << 30
    )
    assert pod.to_dict() == OLD_POD_CONFIG  # written back exactly as read


def test_old_state_files_restore() -> None:
    """A daemon upgraded over pods and containers written before records restores them."""
    sandbox = Sandbox.from_json(json.dumps(OLD_SANDBOX_JSON).encode())
    assert sandbox.config == cri.PodSandboxConfig.from_dict(OLD_POD_CONFIG)
    assert sandbox.config.metadata.name == "podsandbox1" and sandbox.ips == ["10.89.0.7"]
    rewritten = json.loads(sandbox.to_json())
    assert rewritten == {k: v for k, v in OLD_SANDBOX_JSON.items() if k != "some_field_of_a_newer_crio"}
    container = Container.from_json(json.dumps(OLD_CONTAINER_JSON).encode())
    config = container.config
    assert config.envs == (cri.KeyValue("PATH", b"/usr/bin"),)
    assert config.mounts[0].propagation == "PROPAGATION_HOST_TO_CONTAINER"
    assert config.resources == cri.LinuxContainerResources(cpu_quota=20000, oom_score_adj=30)
    assert config.security_context.run_as_user == 0
    assert config.security_context.capabilities == cri.Capability(drop_capabilities=("ALL",))
    assert config.tty and not config.stdin
    assert json.loads(container.to_json())["config"] == OLD_CONTAINER_JSON["config"]


def test_malformed_state_file_is_a_value_error() -> None:
    broken = dict(OLD_SANDBOX_JSON, config={"metadata": "podsandbox1"})
    with pytest.raises(ValueError, match=r"config\.metadata: 'podsandbox1' is not a PodSandboxMetadata"):
        Sandbox.from_json(json.dumps(broken).encode())


def test_pod_digest_is_unchanged() -> None:
    """A retried RunPodSandbox is recognised against a digest stored before records."""
    old = hashlib.sha256(
        json.dumps({"config": message_dict(RICH_POD), "handler": "runc"}, sort_keys=True).encode()
    ).hexdigest()
    assert config_digest(cri.PodSandboxConfig.from_message(RICH_POD), "runc") == old


# (dict, field, its value, the dict written back): absent, empty and set messages and wrappers stay apart.
ABSENT_OR_DEFAULT: list[tuple[dict[str, Any], str, Any, dict[str, Any]]] = [
    ({}, "run_as_user", None, {}),
    ({"run_as_user": {}}, "run_as_user", 0, {"run_as_user": {}}),
    ({"run_as_user": {"value": "7"}}, "run_as_user", 7, {"run_as_user": {"value": "7"}}),
    ({"run_as_user": {"value": 7}}, "run_as_user", 7, {"run_as_user": {"value": "7"}}),
    ({}, "seccomp", None, {}),
    ({"seccomp": {}}, "seccomp", cri.SecurityProfile("RuntimeDefault"), {"seccomp": {}}),
    ({}, "namespace_options", None, {}),
    ({"namespace_options": {}}, "namespace_options", cri.NamespaceOption(), {"namespace_options": {}}),
    ({"capabilities": None}, "capabilities", None, {}),
]


@pytest.mark.parametrize(("data", "name", "value", "written"), ABSENT_OR_DEFAULT)
def test_absent_versus_default(data: dict[str, Any], name: str, value: Any, written: dict[str, Any]) -> None:
    context = cri.LinuxContainerSecurityContext.from_dict(data)
    assert getattr(context, name) == value
    assert context.to_dict() == written


def test_presence_from_messages() -> None:
    empty = cri.ContainerConfig.from_message(api.ContainerConfig())
    assert empty.linux is None and empty.resources is None
    assert empty.security_context == cri.LinuxContainerSecurityContext()
    assert empty.namespace_options == cri.NamespaceOption()
    present = cri.ContainerConfig.from_message(
        api.ContainerConfig(linux=api.LinuxContainerConfig(resources=api.LinuxContainerResources()))
    )
    assert present.resources == cri.LinuxContainerResources()
    assert present.to_dict() == {"linux": {"resources": {}}}
    # metadata and image: an empty message is the same as none (validation refuses both)
    assert cri.ContainerConfig.from_dict({"metadata": {}}).to_dict() == {}


def test_with_resources() -> None:
    config = cri.ContainerConfig.from_message(RICH_CONTAINER)
    smaller = cri.LinuxContainerResources(cpu_shares=2)
    updated = config.with_resources(smaller)
    assert updated.resources == smaller and updated.security_context == config.security_context
    assert cri.ContainerConfig().with_resources(smaller).to_dict() == {
        "linux": {"resources": {"cpu_shares": "2"}}
    }


def test_unknown_keys_are_ignored() -> None:
    data = {"metadata": {"name": "p", "future": 1}, "windows": {"x": 1}, "brand_new": [1]}
    assert cri.PodSandboxConfig.from_dict(data) == cri.PodSandboxConfig(
        metadata=cri.PodSandboxMetadata(name="p")
    )


def test_unknown_enum_numbers_are_kept_by_number() -> None:
    message = api.Mount(container_path="/x")
    message.propagation = 7  # type: ignore[assignment]  # proto3 enums are open
    mount = cri.Mount.from_message(message)
    assert mount.propagation == "7"
    assert mount.to_dict() == message_dict(message) == {"container_path": "/x", "propagation": 7}
    assert cri.Mount.from_dict({"propagation": 1}).propagation == "PROPAGATION_HOST_TO_CONTAINER"
    assert cri.Mount.from_dict({"propagation": "SOMETHING_NEW"}).propagation == "SOMETHING_NEW"


BAD: list[tuple[type[cri.Record], dict[str, Any], str]] = [
    (cri.PodSandboxConfig, {"metadata": {"attempt": "one"}}, r"metadata\.attempt: 'one' is not an integer"),
    (cri.PodSandboxConfig, {"metadata": {"attempt": -1}}, r"metadata\.attempt: -1 is out of range"),
    (cri.PodSandboxConfig, {"metadata": {"name": 5}}, r"metadata\.name: 5 is not a string"),
    (cri.PodSandboxConfig, {"metadata": []}, r"metadata: \[\] is not a PodSandboxMetadata mapping"),
    (cri.PodSandboxConfig, {"port_mappings": {"a": 1}}, r"port_mappings: .* is not a list"),
    (
        cri.PodSandboxConfig,
        {"port_mappings": [{"host_port": 1 << 31}]},
        r"port_mappings\[0\]\.host_port: .* range",
    ),
    (
        cri.PodSandboxConfig,
        {"port_mappings": [{"protocol": ["TCP"]}]},
        r"protocol: .* not an enum name or number",
    ),
    (cri.PodSandboxConfig, {"labels": {"a": 1}}, r"labels: entry 'a': 1 is not string to string"),
    (cri.PodSandboxConfig, {"labels": ["a"]}, r"labels: \['a'\] is not a mapping"),
    (
        cri.PodSandboxConfig,
        {"linux": {"security_context": {"privileged": "yes"}}},
        r"privileged: 'yes' is not a boolean",
    ),
    (
        cri.LinuxContainerSecurityContext,
        {"run_as_user": "1000"},
        r"run_as_user: '1000' is not an Int64Value mapping",
    ),
    (
        cri.LinuxContainerSecurityContext,
        {"run_as_user": {"value": True}},
        r"run_as_user\.value: True is not an",
    ),
    (
        cri.LinuxContainerSecurityContext,
        {"supplemental_groups": ["x"]},
        r"supplemental_groups\[0\]: 'x' is not an",
    ),
    (cri.LinuxContainerResources, {"cpu_shares": str(1 << 63)}, r"cpu_shares: .* is out of range"),
    (
        cri.ContainerConfig,
        {"envs": [{"key": "A", "value": "not base64!"}]},
        r"envs\[0\]\.value: .* is not base64",
    ),
    (cri.ContainerConfig, {"envs": [{"key": "A", "value": 5}]}, r"envs\[0\]\.value: 5 is not base64 text"),
]


@pytest.mark.parametrize(("record", "data", "error"), BAD)
def test_bad_values_name_the_field(record: type[cri.Record], data: dict[str, Any], error: str) -> None:
    with pytest.raises(cri.RecordError, match=error):
        record.from_dict(data)


def test_raw_bytes_are_taken_as_they_are() -> None:
    assert cri.KeyValue.from_dict({"key": "K", "value": b"raw"}).value == b"raw"


def test_from_message_checks_the_message_type() -> None:
    with pytest.raises(TypeError, match=r"needs a runtime\.v1\.ContainerConfig"):
        cri.ContainerConfig.from_message(api.PodSandboxConfig())


def test_a_record_that_disagrees_with_its_message_is_refused() -> None:
    @dataclass(frozen=True, slots=True)
    class DNSConfig(cri.Record):
        servers: str = ""  # repeated on the wire

    @dataclass(frozen=True, slots=True)
    class PortMapping(cri.Record):
        host_port: str = ""  # an int32

    @dataclass(frozen=True, slots=True)
    class Mount(cri.Record):
        destination: str = ""  # no such field

    @dataclass(frozen=True, slots=True)
    class Unheard(cri.Record):
        name: str = ""

    for record, error in (
        (DNSConfig, "repeated field must be tuple"),
        (PortMapping, "does not fit the hint"),
        (Mount, "Mount.destination is not a field of runtime.v1.Mount"),
        (Unheard, "Unheard is not a runtime.v1 message"),
    ):
        with pytest.raises(TypeError, match=error):
            record().to_dict()
