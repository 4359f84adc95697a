"""The whole container spec: each rule checked on the assembled OCI spec, plus the requests it refuses."""

from __future__ import annotations

import json
from typing import Any

import pytest

from crio.core.api import api_pb2 as api
from crio.core.errors import FailedPrecondition, InvalidArgument
from crio.core.spec.container import (
    container_spec,
    dropped_annotations,
    process_user,
    spec_host_mount_requirements,
)
from crio.core.spec.defaults import MASKED_PATHS, READONLY_PATHS, default_device_rules
from tests.unit.test_spec_builders import BOUNDING, container_config, linux, pod_config, spec_input

UID = api.Int64Value
N = api.NamespaceOption
FUSE = {"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229, "fileMode": 0o666, "uid": 0, "gid": 0}
FUSE_RULE = {"allow": True, "type": "c", "major": 10, "minor": 229, "access": "rw"}
BASE_ENV = ["PATH=/bin:/usr/bin", "HOSTNAME=podhost", "HOME=/root"]


def dig(spec: dict[str, Any], path: str) -> Any:
    """The value at a dotted path; a missing key gives the marker "<absent>"."""
    value: Any = spec
    for key in path.split("."):
        if not isinstance(value, dict) or key not in value:
            return "<absent>"
        value = value[key]
    return value


def mounts_by_destination(spec: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {m["destination"]: m for m in spec["mounts"]}


def test_plain_container() -> None:
    spec = container_spec(spec_input())
    json.dumps(spec)  # serialisable as config.json
    assert spec["ociVersion"]
    assert spec["root"] == {"path": "/var/lib/rootfs", "readonly": False}
    assert spec["hostname"] == "podhost"
    process = spec["process"]
    assert process["args"] == ["sh"]
    assert process["env"] == BASE_ENV
    assert process["cwd"] == "/"
    assert process["terminal"] is False
    assert process["user"] == {"uid": 0, "gid": 0, "additionalGids": [0]}
    assert process["noNewPrivileges"] is False
    assert process["oomScoreAdj"] == -999
    assert "rlimits" not in process and "apparmorProfile" not in process and "selinuxLabel" not in process
    caps = process["capabilities"]
    assert caps["bounding"] == ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_KILL", "CAP_NET_RAW"]
    assert caps["inheritable"] == [] and caps["ambient"] == []
    linux_spec = spec["linux"]
    assert linux_spec["cgroupsPath"] == "/kubepods/pod1/crio-c1"
    assert linux_spec["maskedPaths"] == list(MASKED_PATHS)
    assert linux_spec["readonlyPaths"] == list(READONLY_PATHS)
    assert linux_spec["resources"]["devices"][0] == {"allow": False, "access": "rwm"}
    assert linux_spec["devices"] == []
    assert (
        "sysctl" not in linux_spec and "seccomp" not in linux_spec and "rootfsPropagation" not in linux_spec
    )
    assert [ns["type"] for ns in linux_spec["namespaces"]] == ["mount", "network", "ipc", "uts", "pid"]
    mounts = mounts_by_destination(spec)
    assert mounts["/dev/shm"]["source"] == "/run/pods/p1/shm"
    assert mounts["/etc/resolv.conf"]["source"] == "/pods/p1/resolv.conf"
    assert mounts["/etc/hostname"]["source"] == "/pods/p1/hostname"
    assert mounts["/etc/hosts"]["source"] == "/pods/p1/hosts"
    assert "ro" in mounts["/sys"]["options"] and "ro" in mounts["/sys/fs/cgroup"]["options"]
    assert spec["annotations"] == {
        "io.kubernetes.cri.container-type": "container",
        "io.kubernetes.cri.sandbox-id": "p1",
        "io.kubernetes.cri.sandbox-name": "pod",
        "io.kubernetes.cri.sandbox-namespace": "ns",
        "io.kubernetes.cri.sandbox-uid": "uid-1",
        "io.kubernetes.cri.container-name": "ctr",
        "io.kubernetes.cri.image-name": "busybox:1.29-2",
    }


PRIVILEGED_POD = pod_config(privileged=True)
HOST_POD = pod_config(namespace_options=N(network=api.NODE, ipc=api.NODE, pid=api.NODE))
RESOURCES = api.LinuxContainerResources(
    cpu_shares=1024, memory_limit_in_bytes=15 << 20, memory_swap_limit_in_bytes=15 << 20, oom_score_adj=1000
)
IMAGE = {
    "config": {
        "User": "www-data",
        "Env": ["PATH=/usr/bin", "HOME=/img"],
        "Entrypoint": ["/entry"],
        "Cmd": ["c"],
        "WorkingDir": "/srv",
    }
}


def sc(**security: Any) -> dict[str, Any]:
    """Input overrides: a container with security context ``security``."""
    return {"config": container_config(linux=linux(**security))}


def caps(add: tuple[str, ...] = (), drop: tuple[str, ...] = ()) -> dict[str, Any]:
    """Input overrides: a container adding and dropping capabilities."""
    return sc(capabilities=api.Capability(add_capabilities=add, drop_capabilities=drop))


def with_mounts(*mounts: api.Mount) -> dict[str, Any]:
    """Input overrides: a container with CRI mounts."""
    return {"config": container_config(mounts=list(mounts))}


def mount(**fields: Any) -> api.Mount:
    fields.setdefault("container_path", "/data")
    fields.setdefault("host_path", "/srv/data")
    return api.Mount(**fields)


WITH_RESOURCES = {"config": container_config(linux=api.LinuxContainerConfig(resources=RESOURCES))}
DEFAULT_SET = ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_KILL", "CAP_NET_RAW"]
ARGS = {"config": container_config(command=["/bin/x"], args=["a"])}
FUSE_DEVICE = {"devices": [FUSE | {"path": "/dev/f", "permissions": "rw"}], "host_devices": [FUSE]}
BIDIRECTIONAL, HOST_TO_CONTAINER = api.PROPAGATION_BIDIRECTIONAL, api.PROPAGATION_HOST_TO_CONTAINER

# (what, input overrides, dotted path in the spec, expected value)
RULES: list[tuple[str, dict[str, Any], str, Any]] = [
    ("args from command", ARGS, "process.args", ["/bin/x", "a"]),
    ("args from image", {"image_config": IMAGE}, "process.args", ["/entry", "c"]),
    (
        "args replace Cmd",
        {"image_config": IMAGE, "config": container_config(args=["a"])},
        "process.args",
        ["/entry", "a"],
    ),
    ("image cwd", {"image_config": IMAGE}, "process.cwd", "/srv"),
    ("CRI cwd", {"image_config": IMAGE, "config": container_config(working_dir="/w")}, "process.cwd", "/w"),
    (
        "image env, HOME",
        {"image_config": IMAGE},
        "process.env",
        ["PATH=/usr/bin", "HOSTNAME=podhost", "HOME=/img"],
    ),
    (
        "image user",
        {"image_config": IMAGE},
        "process.user",
        {"uid": 33, "gid": 33, "additionalGids": [33, 100]},
    ),
    (
        "run_as_user over image user",
        {"image_config": IMAGE, **sc(run_as_user=UID(value=1001))},
        "process.user",
        {"uid": 1001, "gid": 1001, "additionalGids": [1001]},
    ),
    (
        "run_as_group, primary gid first",
        sc(run_as_user=UID(value=1001), run_as_group=UID(value=1002), supplemental_groups=[1003]),
        "process.user",
        {"uid": 1001, "gid": 1002, "additionalGids": [1002, 1003]},
    ),
    (
        "run_as_username: HOME",
        sc(run_as_username="nobody"),
        "process.env",
        [*BASE_ENV[:2], "HOME=/nonexistent"],
    ),
    ("run_as_username: ids", sc(run_as_username="nobody"), "process.user.uid", 65534),
    ("tty", {"config": container_config(tty=True, stdin=True, stdin_once=True)}, "process.terminal", True),
    (
        "tty: TERM",
        {"config": container_config(tty=True)},
        "process.env",
        [*BASE_ENV[:2], "TERM=xterm", BASE_ENV[2]],
    ),
    ("no_new_privs", sc(no_new_privs=True), "process.noNewPrivileges", True),
    ("oom_score_adj", WITH_RESOURCES, "process.oomScoreAdj", 1000),
    ("memory and swap", WITH_RESOURCES, "linux.resources.memory", {"limit": 15 << 20, "swap": 15 << 20}),
    ("cpu", WITH_RESOURCES, "linux.resources.cpu", {"shares": 1024}),
    ("pids limit", {"pids_limit": 2048}, "linux.resources.pids", {"limit": 2048}),
    ("add cap", caps(add=("NET_ADMIN",)), "process.capabilities.bounding", [*DEFAULT_SET, "CAP_NET_ADMIN"]),
    ("drop cap", caps(drop=("NET_RAW",)), "process.capabilities.effective", DEFAULT_SET[:3]),
    ("add ALL", caps(add=("ALL",)), "process.capabilities.permitted", list(BOUNDING)),
    ("drop ALL", caps(drop=("ALL",)), "process.capabilities.bounding", []),
    ("add ALL: ambient empty", caps(add=("ALL",)), "process.capabilities.ambient", []),
    ("add ALL: inheritable empty", caps(add=("ALL",)), "process.capabilities.inheritable", []),
    ("readonly rootfs", sc(readonly_rootfs=True), "root.readonly", True),
    ("masked paths replace", sc(masked_paths=["/bin/ls"]), "linux.maskedPaths", ["/bin/ls"]),
    ("readonly paths replace", sc(readonly_paths=["/tmp"]), "linux.readonlyPaths", ["/tmp"]),
    ("host network: no hostname", {"pod_config": HOST_POD, "pod_netns_path": ""}, "hostname", "<absent>"),
    ("cgroup parent default", {"cgroup_parent": ""}, "linux.cgroupsPath", "/crio/crio-c1"),
    ("CRI annotations kept", {"config": container_config(annotations={"a": "1"})}, "annotations.a", "1"),
    ("bidirectional", with_mounts(mount(propagation=BIDIRECTIONAL)), "linux.rootfsPropagation", "rshared"),
    (
        "host-to-container",
        with_mounts(mount(propagation=HOST_TO_CONTAINER)),
        "linux.rootfsPropagation",
        "rslave",
    ),
    ("device", FUSE_DEVICE, "linux.devices", [FUSE | {"path": "/dev/f"}]),
    ("device rule", FUSE_DEVICE, "linux.resources.devices", [*default_device_rules(), FUSE_RULE]),
]


@pytest.mark.parametrize(("what", "overrides", "path", "expected"), RULES, ids=[r[0] for r in RULES])
def test_rule(what: str, overrides: dict[str, Any], path: str, expected: Any) -> None:
    assert dig(container_spec(spec_input(**overrides)), path) == expected


def test_privileged() -> None:
    config = container_config(
        linux=linux(
            privileged=True,
            capabilities=api.Capability(drop_capabilities=["ALL"]),
            masked_paths=["/proc/kcore"],
            readonly_paths=["/proc/sys"],
        )
    )
    spec = container_spec(spec_input(config=config, pod_config=PRIVILEGED_POD, host_devices=[FUSE]))
    caps = spec["process"]["capabilities"]
    for key in ("bounding", "effective", "permitted"):
        assert caps[key] == list(BOUNDING)  # exactly the daemon's bounding set
    assert caps["inheritable"] == [] and caps["ambient"] == []
    assert spec["linux"]["maskedPaths"] == [] and spec["linux"]["readonlyPaths"] == []
    mounts = mounts_by_destination(spec)
    assert "rw" in mounts["/sys/fs/cgroup"]["options"] and "ro" not in mounts["/sys"]["options"]
    assert spec["linux"]["devices"] == [FUSE]
    assert spec["linux"]["resources"]["devices"] == [{"allow": True, "access": "rwm"}]


def test_readonly_rootfs_makes_pod_files_read_only() -> None:
    spec = container_spec(spec_input(config=container_config(linux=linux(readonly_rootfs=True))))
    mounts = mounts_by_destination(spec)
    for destination in ("/etc/hosts", "/etc/hostname", "/etc/resolv.conf"):
        assert "ro" in mounts[destination]["options"]
    assert "ro" not in mounts["/dev/shm"]["options"]


def test_host_namespaces() -> None:
    spec = container_spec(spec_input(pod_config=HOST_POD, pod_netns_path="", pod_shm_path="", infra_pid=0))
    assert spec["linux"]["namespaces"] == [{"type": "mount"}]
    assert mounts_by_destination(spec)["/dev/shm"]["source"] == "/dev/shm"
    assert "HOSTNAME=podhost" in spec["process"]["env"]


def test_cri_mount_replaces_pod_file_and_keeps_order() -> None:
    config = container_config(
        mounts=[
            api.Mount(container_path="/etc/hosts", host_path="/kubelet/etc-hosts"),
            api.Mount(container_path="/dev/termination-log", host_path="/kubelet/termination-log"),
        ]
    )
    spec = container_spec(spec_input(config=config))
    destinations = [m["destination"] for m in spec["mounts"]]
    assert destinations.count("/etc/hosts") == 1
    assert mounts_by_destination(spec)["/etc/hosts"]["source"] == "/kubelet/etc-hosts"
    assert destinations.index("/dev") < destinations.index("/dev/termination-log")


def test_own_annotations_win_and_runtime_ones_are_dropped() -> None:
    annotations = {
        "io.kubernetes.cri.sandbox-id": "evil",
        "org.systemd.property.ExecStopPost": "/bin/sh",
        "x": "y",
    }
    inp = spec_input(config=container_config(annotations=annotations))
    spec = container_spec(inp)
    assert spec["annotations"]["io.kubernetes.cri.sandbox-id"] == "p1"
    assert "org.systemd.property.ExecStopPost" not in spec["annotations"]
    assert spec["annotations"]["x"] == "y"
    assert dropped_annotations(inp) == ["io.kubernetes.cri.sandbox-id", "org.systemd.property.ExecStopPost"]


def test_image_name_annotation_prefers_the_resolved_name() -> None:
    spec = container_spec(spec_input(image_name="docker.io/library/busybox:1.29-2"))
    assert spec["annotations"]["io.kubernetes.cri.image-name"] == "docker.io/library/busybox:1.29-2"


def test_host_mount_requirements() -> None:
    config = container_config(
        mounts=[
            api.Mount(container_path="/a", host_path="/ha", propagation=api.PROPAGATION_BIDIRECTIONAL),
            api.Mount(container_path="/b", host_path="/hb", propagation=api.PROPAGATION_HOST_TO_CONTAINER),
            api.Mount(container_path="/c", host_path="/hc"),
        ]
    )
    assert spec_host_mount_requirements(spec_input(config=config)) == [("/ha", "shared"), ("/hb", "slave")]


def test_process_user_matches_the_spec() -> None:
    inp = spec_input(config=container_config(linux=linux(run_as_user=UID(value=1000))))
    user = process_user(inp)
    assert (user.uid, user.gid, user.additional_gids, user.username) == (
        1000,
        1000,
        (1000, 100, 50000),
        "user1000",
    )
    assert container_spec(inp)["process"]["user"]["additionalGids"] == [1000, 100, 50000]


def env(key: str, value: str) -> api.KeyValue:
    return api.KeyValue(key=key, value=value.encode())


def image(**config: Any) -> dict[str, Any]:
    """Input overrides: an image config."""
    return {"image_config": {"config": config}}


RRO = {"readonly": True, "recursive_read_only": True}
BAD_DEVICE = {"devices": [FUSE | {"path": "/dev/x", "permissions": "rwx"}]}

# (what, input overrides, error, message) — the critest specs and CVE rows among them
REFUSED: list[tuple[str, dict[str, Any], type[Exception], str]] = [
    (
        "HOME with LF",
        {"config": container_config(envs=[env("HOME", "/x\nroot::0:0::/:/bin/sh")])},
        InvalidArgument,
        "HOME",
    ),
    ("HOME with CR", {"config": container_config(envs=[env("HOME", "/x\r")])}, InvalidArgument, "HOME"),
    ("image HOME with LF", image(Cmd=["sh"], Env=["HOME=/\n"]), InvalidArgument, "HOME"),
    ("run_as_group alone", sc(run_as_group=UID(value=1002)), InvalidArgument, "run_as_group"),
    ("unknown username", sc(run_as_username="ghost"), InvalidArgument, "'ghost'"),
    ("unknown image user", image(Cmd=["sh"], User="ghost:1"), InvalidArgument, "'ghost'"),
    ("rro without readonly", with_mounts(mount(recursive_read_only=True)), InvalidArgument, "read-only"),
    ("rro with rslave", with_mounts(mount(**RRO, propagation=HOST_TO_CONTAINER)), InvalidArgument, "private"),
    ("rro with rshared", with_mounts(mount(**RRO, propagation=BIDIRECTIONAL)), InvalidArgument, "private"),
    ("relative container_path", with_mounts(mount(container_path="data")), InvalidArgument, "absolute"),
    (
        "'..' in container_path",
        with_mounts(mount(container_path="/data/../../etc")),
        InvalidArgument,
        r"'\.\.'",
    ),
    ("privileged in unprivileged pod", sc(privileged=True), InvalidArgument, "privileged pod"),
    ("no command at all", image(), InvalidArgument, "no command"),
    ("bad device permissions", BAD_DEVICE, InvalidArgument, "/dev/x"),
    ("no infra process", {"infra_pid": 0, "pod_netns_path": ""}, FailedPrecondition, "net namespace"),
]


@pytest.mark.parametrize(("what", "overrides", "error", "message"), REFUSED, ids=[r[0] for r in REFUSED])
def test_refused(what: str, overrides: dict[str, Any], error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        container_spec(spec_input(**overrides))
