"""Mounts: CRI bind mounts (propagation, read-only, RRO), system mounts, overriding and ordering."""

from __future__ import annotations

from typing import Any

import pytest

from crio.core.api import api_pb2 as api
from crio.core.crirecords import Mount
from crio.core.errors import InvalidArgument, Unimplemented
from crio.core.spec.mounts import (
    cri_mount,
    cri_mounts,
    host_mount_requirements,
    merge_mounts,
    rootfs_propagation,
    system_mounts,
)
from tests.unit.test_spec_builders import container_config

PRIVATE, SLAVE, SHARED = (
    api.PROPAGATION_PRIVATE,
    api.PROPAGATION_HOST_TO_CONTAINER,
    api.PROPAGATION_BIDIRECTIONAL,
)


def mount(**fields: Any) -> Mount:
    fields.setdefault("container_path", "/data")
    fields.setdefault("host_path", "/srv/data")
    return Mount.from_message(api.Mount(**fields))


# (CRI mount, expected OCI options)
OPTIONS: list[tuple[Mount, list[str]]] = [
    (mount(), ["rbind", "rprivate", "rw"]),
    (mount(readonly=True), ["rbind", "rprivate", "ro"]),
    (mount(propagation=SLAVE), ["rbind", "rslave", "rw"]),
    (mount(propagation=SHARED, readonly=True), ["rbind", "rshared", "ro"]),
    (mount(readonly=True, recursive_read_only=True), ["rbind", "rprivate", "rro"]),
    (mount(selinux_relabel=True), ["rbind", "rprivate", "rw"]),  # ignored
]


@pytest.mark.parametrize(("cri", "options"), OPTIONS)
def test_cri_mount_options(cri: Mount, options: list[str]) -> None:
    assert cri_mount(cri) == {
        "destination": "/data",
        "type": "bind",
        "source": "/srv/data",
        "options": options,
    }


def test_container_path_is_cleaned() -> None:
    assert cri_mount(mount(container_path="//data/./sub/"))["destination"] == "/data/sub"


# (CRI mount, error class, message) — the RRO rules are critest specs
BAD: list[tuple[Mount, type[Exception], str]] = [
    (mount(recursive_read_only=True), InvalidArgument, "needs a read-only mount"),
    (
        mount(readonly=True, recursive_read_only=True, propagation=SLAVE),
        InvalidArgument,
        "private propagation",
    ),
    (
        mount(readonly=True, recursive_read_only=True, propagation=SHARED),
        InvalidArgument,
        "private propagation",
    ),
    (mount(container_path="data"), InvalidArgument, "not an absolute path"),
    (mount(container_path=""), InvalidArgument, "not an absolute path"),
    (mount(container_path="/data/../etc"), InvalidArgument, "'..'"),
    (mount(container_path="/.."), InvalidArgument, "'..'"),
    (mount(container_path="/"), InvalidArgument, "root"),
    (mount(host_path=""), InvalidArgument, "host_path"),
    (mount(host_path="srv"), InvalidArgument, "host_path"),
    (mount(propagation=7), InvalidArgument, "unknown propagation '7'"),  # proto3 enums are open
    (mount(host_path="", image=api.ImageSpec(image="busybox")), InvalidArgument, "must be read-only"),
    (mount(uidMappings=[api.IDMapping(host_id=1000, container_id=0, length=1)]), Unimplemented, "id-mapped"),
]


@pytest.mark.parametrize(("cri", "error", "message"), BAD)
def test_cri_mount_refuses(cri: Mount, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        cri_mount(cri)


def test_names_like_dotdot_are_fine() -> None:
    assert cri_mount(mount(container_path="/a..b/..c"))["destination"] == "/a..b/..c"


def test_duplicate_destinations_are_refused() -> None:
    config = container_config(
        mounts=[
            api.Mount(container_path="/d", host_path="/a"),
            api.Mount(container_path="/d/", host_path="/b"),
        ]
    )
    with pytest.raises(InvalidArgument, match="share the container path /d"):
        cri_mounts(config)


def destinations(mounts: list[dict[str, Any]]) -> list[str]:
    return [m["destination"] for m in mounts]


FILES = {"hostname": "/p/hostname", "resolv.conf": "/p/resolv.conf", "hosts": "/p/hosts"}


def by_destination(mounts: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {m["destination"]: m for m in mounts}


@pytest.mark.parametrize(("privileged", "access"), [(False, "ro"), (True, "rw")])
def test_system_mounts_sys_and_cgroup(privileged: bool, access: str) -> None:
    mounts = by_destination(system_mounts(privileged, "/p/shm", False, FILES, False))
    assert set(mounts) == {
        "/proc", "/dev", "/dev/pts", "/dev/mqueue", "/sys", "/sys/fs/cgroup", "/dev/shm",
        "/etc/hostname", "/etc/resolv.conf", "/etc/hosts",
    }  # fmt: skip
    assert mounts["/sys/fs/cgroup"]["type"] == "cgroup"
    assert access in mounts["/sys/fs/cgroup"]["options"]
    assert ("ro" in mounts["/sys"]["options"]) is not privileged


# (shm path, host IPC, expected /dev/shm type and source)
SHM: list[tuple[str, bool, str, str]] = [
    ("/p/shm", False, "bind", "/p/shm"),
    ("", True, "bind", "/dev/shm"),
    ("", False, "tmpfs", "shm"),
]


@pytest.mark.parametrize(("shm", "host_ipc", "kind", "source"), SHM)
def test_shm(shm: str, host_ipc: bool, kind: str, source: str) -> None:
    mounts = by_destination(system_mounts(False, shm, host_ipc, {}, False))
    assert (mounts["/dev/shm"]["type"], mounts["/dev/shm"]["source"]) == (kind, source)
    assert "/etc/hosts" not in mounts  # no pod files given, none mounted


@pytest.mark.parametrize(("readonly_rootfs", "access"), [(False, "rw"), (True, "ro")])
def test_pod_files(readonly_rootfs: bool, access: str) -> None:
    mounts = by_destination(system_mounts(False, "", False, FILES, readonly_rootfs))
    for name, destination in (
        ("hostname", "/etc/hostname"),
        ("resolv.conf", "/etc/resolv.conf"),
        ("hosts", "/etc/hosts"),
    ):
        assert mounts[destination]["source"] == FILES[name]
        assert mounts[destination]["options"][-1] == access


def oci(destination: str, source: str = "/h") -> dict[str, Any]:
    return {
        "destination": destination,
        "type": "bind",
        "source": source,
        "options": ["rbind", "rprivate", "rw"],
    }


SYSTEM = frozenset(
    {"/proc", "/dev", "/dev/pts", "/dev/mqueue", "/sys", "/sys/fs/cgroup", "/dev/shm"}
    | {"/etc/hostname", "/etc/resolv.conf", "/etc/hosts"}
)

# (CRI destinations, system destinations they replace)
OVERRIDES: list[tuple[list[str], set[str]]] = [
    (["/etc/hosts"], {"/etc/hosts"}),
    (["/dev"], {"/dev", "/dev/pts", "/dev/mqueue", "/dev/shm"}),
    (["/sys"], {"/sys", "/sys/fs/cgroup"}),
    (["/dev/shm", "/etc"], {"/dev/shm"}),  # /etc does not take the pod files with it
    (["/data"], set()),
]


@pytest.mark.parametrize(("cri", "replaced"), OVERRIDES)
def test_cri_mounts_replace_system_ones(cri: list[str], replaced: set[str]) -> None:
    merged = merge_mounts(system_mounts(False, "/p/shm", False, FILES, False), [oci(d) for d in cri])
    system = {m["destination"] for m in merged if m.get("source") != "/h"}
    assert system == SYSTEM - replaced
    assert sorted(m["destination"] for m in merged if m.get("source") == "/h") == sorted(cri)


def test_parents_before_children() -> None:
    cri = [oci("/a/b/c"), oci("/dev/termination-log"), oci("/a"), oci("/a/b")]
    merged = destinations(merge_mounts(system_mounts(False, "/p/shm", False, FILES, False), cri))
    for i, child in enumerate(merged):
        for parent in merged[i + 1 :]:
            assert not child.startswith(parent.rstrip("/") + "/"), f"{parent} comes after its child {child}"
    assert merged.index("/a") < merged.index("/a/b") < merged.index("/a/b/c")


# (propagations of the CRI mounts, rootfsPropagation)
ROOTFS: list[tuple[list[api.MountPropagation], str]] = [
    ([], ""),
    ([PRIVATE], ""),
    ([PRIVATE, SLAVE], "rslave"),
    ([SLAVE, SHARED], "rshared"),
    ([SHARED], "rshared"),
]


@pytest.mark.parametrize(("modes", "expected"), ROOTFS)
def test_rootfs_propagation(modes: list[api.MountPropagation], expected: str) -> None:
    config = container_config(
        mounts=[
            api.Mount(container_path=f"/m{i}", host_path=f"/h{i}", propagation=m) for i, m in enumerate(modes)
        ]
    )
    assert rootfs_propagation(config) == expected


def test_host_mount_requirements() -> None:
    config = container_config(
        mounts=[
            api.Mount(container_path="/a", host_path="/h/private"),
            api.Mount(container_path="/b", host_path="/h/slave", propagation=SLAVE),
            api.Mount(container_path="/c", host_path="/h/shared", propagation=SHARED),
        ]
    )
    assert host_mount_requirements(config) == [("/h/slave", "slave"), ("/h/shared", "shared")]
