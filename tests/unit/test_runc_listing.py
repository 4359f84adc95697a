"""The runc plugin's container listing (crio_runtime_list): ``runc list`` output and runc's state files."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from crio.core.types import RuntimeContainer, RuntimeHandler
from crio.plugins.runc import listing

LISTED = [
    {
        "ociVersion": "1.0.2-dev",
        "id": "abc",
        "pid": 4242,
        "status": "running",
        "bundle": "/run/containers/storage/overlay-containers/abc/userdata",
        "rootfs": "/var/lib/containers/storage/overlay/l1/merged",
        "created": "2024-01-01T00:00:00Z",
        "annotations": {"io.kubernetes.cri.container-type": "sandbox"},
        "owner": "root",
    },
    {"id": "def", "pid": 0, "status": "stopped", "bundle": "/tmp/b", "annotations": None},
]


def test_parse_list() -> None:
    found = listing.parse_list(json.dumps(LISTED).encode())
    assert found == [
        RuntimeContainer(
            id="abc",
            status="running",
            pid=4242,
            bundle="/run/containers/storage/overlay-containers/abc/userdata",
            annotations={"io.kubernetes.cri.container-type": "sandbox"},
        ),
        RuntimeContainer(id="def", status="stopped", pid=0, bundle="/tmp/b"),
    ]


@pytest.mark.parametrize("stdout", [b"null", b"", b"[]", b"null\n"])
def test_an_empty_state_directory_lists_nothing(stdout: bytes) -> None:
    assert listing.parse_list(stdout) == []


@pytest.mark.parametrize("stdout", [b"{}", b"[1]", b'[{"pid": 1}]', b'[{"id": ""}]', b"not json"])
def test_unexpected_output_is_refused(stdout: bytes) -> None:
    with pytest.raises(ValueError):
        listing.parse_list(stdout)


def test_cgroup_paths_from_runc_state() -> None:
    state = {
        "cgroup_paths": {
            "memory": "/sys/fs/cgroup/memory/crio/crio-abc",
            "": "/sys/fs/cgroup/unified/crio/crio-abc",
            "name=systemd": "/sys/fs/cgroup/systemd/crio/crio-abc",
            "bogus": "relative/path",
            "other": 3,
        }
    }
    assert listing.cgroup_paths(state) == (
        "/sys/fs/cgroup/memory/crio/crio-abc",
        "/sys/fs/cgroup/systemd/crio/crio-abc",
        "/sys/fs/cgroup/unified/crio/crio-abc",
    )
    assert listing.cgroup_paths({}) == ()
    assert listing.cgroup_paths({"cgroup_paths": ["/x"]}) == ()


def test_state_root() -> None:
    assert listing.state_root(RuntimeHandler("runc", "/usr/sbin/runc", runtime_root="/run/r")) == Path(
        "/run/r"
    )
    assert listing.state_root(RuntimeHandler("runc", "/usr/sbin/runc")) == Path("/run/runc")
    assert listing.state_root(RuntimeHandler("crun", "/usr/bin/crun")) == Path("/run/crun")


def test_state_files_add_cgroup_directories(tmp_path: Path) -> None:
    (tmp_path / "abc").mkdir()
    (tmp_path / "abc" / "state.json").write_text(
        json.dumps({"cgroup_paths": {"pids": "/sys/fs/cgroup/pids/x"}})
    )
    (tmp_path / "def").mkdir()
    (tmp_path / "def" / "state.json").write_text("{broken")
    found = listing.parse_list(json.dumps(LISTED).encode())
    completed = asyncio.run(asyncio.to_thread(listing.with_cgroup_paths, found, tmp_path))
    assert [c.cgroup_paths for c in completed] == [("/sys/fs/cgroup/pids/x",), ()]
