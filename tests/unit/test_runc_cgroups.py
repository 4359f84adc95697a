"""The monitor's cgroup: hierarchies from mountinfo, path checks, and placement on a fake cgroupfs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from crio.plugins.runc import cgroups

HYBRID = """\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime shared:9 - cgroup cgroup rw,cpuset,clone_children
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
50 31 0:29 / /mnt/cpu\\040again rw,relatime - cgroup cgroup rw,cpu
"""


def test_parse_mountinfo_hybrid() -> None:
    found = cgroups.parse_mountinfo(HYBRID)
    assert found == [
        cgroups.Hierarchy(Path("/sys/fs/cgroup/cpu"), 1, ("cpu",)),
        cgroups.Hierarchy(Path("/sys/fs/cgroup/cpuset"), 1, ("cpuset",)),
        cgroups.Hierarchy(Path("/sys/fs/cgroup/systemd"), 1, ("name=systemd",)),
        cgroups.Hierarchy(Path("/sys/fs/cgroup/unified"), 2),
    ]
    assert found[1].is_cpuset and not found[0].is_cpuset


def test_parse_mountinfo_v2_only_and_escapes() -> None:
    text = "30 23 0:26 / /sys/fs/cgroup\\040x rw - cgroup2 cgroup2 rw,nsdelegate\n"
    assert cgroups.parse_mountinfo(text) == [cgroups.Hierarchy(Path("/sys/fs/cgroup x"), 2)]


def test_relative_and_overlaps() -> None:
    assert cgroups.relative("/a//b/./c/") == "a/b/c"
    with pytest.raises(ValueError):
        cgroups.relative("/a/../b")
    assert cgroups.overlaps("/pod/ctr", "/pod/ctr")
    assert cgroups.overlaps("/pod/ctr/conmon", "pod/ctr")
    assert not cgroups.overlaps("/pod/conmon-ctr", "/pod/ctr")
    assert not cgroups.overlaps("/pod/ctr", "")
    assert not cgroups.overlaps("/system.slice/x", "kubepods.slice:crio:ctr")


def test_move_pid_creates_dirs_and_seeds_cpuset(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cpu = tmp_path / "cpu"
    cpuset = tmp_path / "cpuset"
    for root in (cpu, cpuset):
        root.mkdir()
    (cpuset / "cpuset.cpus").write_text("0-1\n")
    (cpuset / "cpuset.mems").write_text("0\n")
    found = [cgroups.Hierarchy(cpu, 1, ("cpu",)), cgroups.Hierarchy(cpuset, 1, ("cpuset",))]

    original = Path.mkdir

    def fake_mkdir(self: Path, *args: object, **kwargs: object) -> None:
        original(self)
        if self.is_relative_to(cpuset):  # a real cpuset cgroup starts with empty files
            (self / "cpuset.cpus").write_text("")
            (self / "cpuset.mems").write_text("")

    monkeypatch.setattr(Path, "mkdir", fake_mkdir)
    placed = cgroups.move_pid(1234, "/pod/conmon-x", found)
    monkeypatch.undo()
    assert placed == [cpu / "pod/conmon-x", cpuset / "pod/conmon-x"]
    for directory in placed:
        assert (directory / "cgroup.procs").read_text() == "1234\n"
    assert (cpuset / "pod/cpuset.cpus").read_text() == "0-1"
    assert (cpuset / "pod/conmon-x/cpuset.mems").read_text() == "0"
    with pytest.raises(ValueError):
        cgroups.move_pid(1, "/", found)


def test_remove_leaves_busy_and_absent_dirs(tmp_path: Path) -> None:
    root = tmp_path / "cpu"
    (root / "pod/conmon-x").mkdir(parents=True)
    (root / "pod/busy/child").mkdir(parents=True)
    found = [cgroups.Hierarchy(root, 1, ("cpu",))]
    cgroups.remove("/pod/conmon-x", found)
    cgroups.remove("/pod/busy", found)
    cgroups.remove("/pod/absent", found)
    assert not (root / "pod/conmon-x").exists()
    assert (root / "pod/busy").exists()


def test_cgroup_of_self() -> None:
    mine = cgroups.cgroup_of(os.getpid())
    assert "" in mine or mine
