"""Pinned network namespaces: create, detect, remove, propagation of the directory (needs root)."""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from crio.core import netns

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root")


def mountinfo_line(path: Path) -> str | None:
    """This process's mountinfo line whose mount point is ``path``."""
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        if line.split()[4] == str(path):
            return line
    return None


@pytest.fixture
def nsdir(tmp_path: Path) -> Iterator[Path]:
    directory = tmp_path / "netns"
    yield directory
    if directory.exists():
        for entry in directory.iterdir():
            netns.remove(entry)
    subprocess.run(["umount", "-l", str(directory)], capture_output=True)
    netns._prepared.discard(os.path.realpath(directory))


def test_create_exists_remove(nsdir: Path) -> None:
    threads = threading.active_count()
    path = netns.create(nsdir, "pod1")
    assert path == nsdir / "pod1"
    assert netns.exists(path)
    assert threading.active_count() == threads  # the pinning thread is gone
    assert os.stat(path).st_ino != os.stat("/proc/self/ns/net").st_ino  # a new namespace, not ours
    links = subprocess.run(
        ["nsenter", f"--net={path}", "ip", "-o", "link"], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert len(links) == 1 and ": lo:" in links[0]  # only a loopback, still down
    assert mountinfo_line(path) is not None
    netns.remove(path)
    assert not path.exists() and mountinfo_line(path) is None
    netns.remove(path)  # absent is fine
    assert not netns.exists(path)


def test_exists_is_strict(tmp_path: Path) -> None:
    assert netns.exists("/proc/self/ns/net")
    assert not netns.exists("/proc/self/ns/mnt")  # a namespace, but not a network one
    (tmp_path / "plain").write_text("")
    assert not netns.exists(tmp_path / "plain")
    assert not netns.exists(tmp_path / "absent")
    os.mkfifo(tmp_path / "fifo")
    assert not netns.exists(tmp_path / "fifo")  # and does not block


def test_directory_is_a_shared_mount_point(nsdir: Path) -> None:
    netns.create(nsdir, "a")
    line = mountinfo_line(nsdir)
    assert line is not None and "shared:" in line
    netns.create(nsdir, "b")  # prepared once: not bound onto itself twice
    mounts = [
        ln for ln in Path("/proc/self/mountinfo").read_text().splitlines() if ln.split()[4] == str(nsdir)
    ]
    assert len(mounts) == 1


def test_new_namespaces_propagate_to_cloned_mount_namespaces(nsdir: Path) -> None:
    netns.prepare_directory(nsdir)
    other = subprocess.Popen(["unshare", "--mount", "--propagation", "unchanged", "sleep", "30"])
    try:
        time.sleep(0.2)  # let unshare switch namespaces
        path = netns.create(nsdir, "late")
        seen = subprocess.run(
            ["nsenter", f"--mount=/proc/{other.pid}/ns/mnt", "cat", "/proc/self/mountinfo"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert str(path) in seen
        netns.remove(path)
    finally:
        other.kill()
        other.wait()


def test_existing_name_and_bad_names(nsdir: Path) -> None:
    netns.create(nsdir, "dup")
    with pytest.raises(FileExistsError):
        netns.create(nsdir, "dup")
    assert netns.exists(nsdir / "dup")
    for bad in ("", ".", "..", "a/b"):
        with pytest.raises(ValueError):
            netns.create(nsdir, bad)


def test_failure_leaves_nothing(nsdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(target: str, failure: list[OSError]) -> None:
        failure.append(OSError(1, "refused"))

    monkeypatch.setattr(netns, "_pin", refuse)
    with pytest.raises(OSError, match="refused"):
        netns.create(nsdir, "x")
    assert not (nsdir / "x").exists()


def test_many_at_once(nsdir: Path) -> None:
    names = [f"p{i}" for i in range(16)]
    with ThreadPoolExecutor(8) as pool:
        paths = list(pool.map(lambda n: netns.create(nsdir, n), names))
    inodes = {os.stat(p).st_ino for p in paths}
    assert len(inodes) == len(names) and all(netns.exists(p) for p in paths)
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(netns.remove, paths))
    assert list(nsdir.iterdir()) == []


def test_directory_for() -> None:
    assert netns.directory_for("/var/run") == Path("/var/run/netns")
