"""The start-up sweep's host helpers that need no root: mount tables, bundle specs, empty directories."""

from __future__ import annotations

import json
import os
from pathlib import Path

from crio.core.sweep import host

RUN = "/run/containers/storage/overlay-containers"
MOUNTINFO = f"""\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
90 22 0:50 / {RUN}/abc/userdata/shm rw,nosuid shared:40 - tmpfs shm rw,size=65536k
91 22 0:51 / {RUN}/abc/userdata/shm rw,nosuid shared:41 - tmpfs shm rw,size=65536k
92 22 0:52 / {RUN}/abc/image-volumes/v\\040one rw shared:42 - overlay overlay rw
93 22 0:53 / {RUN}/abcd/userdata/shm rw shared:43 - tmpfs shm rw
94 22 0:54 / {RUN}/abc rw shared:44 - tmpfs t rw
"""


def test_mounts_under_a_container_deepest_first() -> None:
    found = host.mounts_under([Path(f"{RUN}/abc")], MOUNTINFO)
    assert found == [f"{RUN}/abc/image-volumes/v one", f"{RUN}/abc/userdata/shm", f"{RUN}/abc"]


def test_mounts_under_nothing_mounted() -> None:
    assert host.mounts_under([Path("/nowhere")], MOUNTINFO) == []


def test_cgroups_path_of_a_bundle(tmp_path: Path) -> None:
    assert host.cgroups_path_of(tmp_path) == ""
    (tmp_path / "config.json").write_text(json.dumps({"linux": {"cgroupsPath": "/crio/crio-x"}}))
    assert host.cgroups_path_of(tmp_path) == "/crio/crio-x"
    (tmp_path / "config.json").write_text(json.dumps({"linux": {"cgroupsPath": 3}}))
    assert host.cgroups_path_of(tmp_path) == ""
    (tmp_path / "config.json").write_text("[]")
    assert host.cgroups_path_of(tmp_path) == ""


def test_remove_empty_dirs(tmp_path: Path) -> None:
    empty, full = tmp_path / "empty", tmp_path / "full"
    empty.mkdir()
    full.mkdir()
    (full / "child").mkdir()
    removed, problems = host.remove_empty_dirs([str(empty), str(full), str(tmp_path / "absent")])
    assert removed == [str(empty)]
    assert len(problems) == 1 and problems[0].startswith(f"{full}: ")
    assert full.exists() and not empty.exists()


def test_entries_of_a_missing_directory(tmp_path: Path) -> None:
    assert host.entries(tmp_path / "absent") == []
    (tmp_path / "crio-x").touch()
    assert host.entries(tmp_path) == ["crio-x"]


def test_remove_link_or_file(tmp_path: Path) -> None:
    target, link, plain = tmp_path / "t", tmp_path / "link", tmp_path / "plain"
    target.mkdir()
    link.symlink_to(target)
    plain.touch()
    assert not host.remove_link_or_file(plain, symlink_only=True) and plain.exists()
    assert host.remove_link_or_file(link, symlink_only=True) and not os.path.lexists(link)
    assert host.remove_link_or_file(plain) and not plain.exists()
    assert not host.remove_link_or_file(plain)


def test_this_process_is_running_and_no_monitor() -> None:
    assert host.is_running(os.getpid())
    assert host.still_running([os.getpid(), 2**22 + 1]) == [os.getpid()]
    assert all(m.pid != os.getpid() for m in host.monitors({"python3", "python"}))
