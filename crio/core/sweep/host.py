"""The host side of the start-up sweep: read processes, directories and mounts, remove what the rules chose.

Everything here is synchronous and blocks on the file system or /proc: call it from a worker thread.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import signal
from collections.abc import Collection, Iterable, Iterator
from pathlib import Path

from crio.core import mountutil
from crio.core.bundlefiles import read_spec
from crio.core.stats.cgroups import host_hierarchy
from crio.core.sweep.rules import Monitor, parse_monitor

PROC = Path("/proc")
_OCTAL = re.compile(r"\\([0-7]{3})")
_MAX_STACKED = 16  # mounts detached from one mount point before giving up
MOUNTINFO = PROC / "self" / "mountinfo"


def _argv(pid_dir: Path) -> list[str]:
    """A process's command line (empty for a kernel thread, a zombie or a process that is gone)."""
    try:
        raw = (pid_dir / "cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0")[:-1]]


def processes() -> Iterator[tuple[int, list[str]]]:
    """``(pid, argv)`` of every process with a command line."""
    for entry in PROC.iterdir():
        if entry.name.isdigit():
            argv = _argv(entry)
            if argv:
                yield int(entry.name), argv


def monitors(names: Collection[str]) -> list[Monitor]:
    """Every running monitor process whose program is named in ``names``."""
    found = []
    for pid, argv in processes():
        monitor = parse_monitor(pid, argv, names)
        if monitor is not None:
            found.append(monitor)
    return found


def is_running(pid: int) -> bool:
    """Whether ``pid`` exists and is not a zombie."""
    try:
        stat = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[:1] != ["Z"]


def still_running(pids: Iterable[int]) -> list[int]:
    """Those of ``pids`` that are running (see :func:`is_running`)."""
    return [pid for pid in pids if is_running(pid)]


def kill(pid: int) -> None:
    """SIGKILL ``pid`` (gone already is fine)."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def entries(directory: Path) -> list[str]:
    """The names in ``directory`` (none when it does not exist)."""
    try:
        return os.listdir(directory)
    except (FileNotFoundError, NotADirectoryError):
        return []


def hierarchies() -> list[str]:
    """The mount points of the host's cgroup hierarchies (v1 controllers, named ones, and v2)."""
    found = host_hierarchy()
    points = set(found.v1.values()) | ({found.unified} if found.unified is not None else set())
    return sorted(str(p) for p in points)


def cgroups_path_of(bundle: Path) -> str:
    """The ``linux.cgroupsPath`` of the bundle's ``config.json`` ("" when there is none)."""
    spec = read_spec(bundle)
    linux = spec.get("linux") if isinstance(spec, dict) else None
    path = linux.get("cgroupsPath") if isinstance(linux, dict) else None
    return path if isinstance(path, str) else ""


def remove_empty_dirs(paths: Iterable[str]) -> tuple[list[str], list[str]]:
    """rmdir every existing path; return ``(removed, problems)`` (a problem names the path and the error;
    a busy cgroup still has processes or children)."""
    removed: list[str] = []
    problems: list[str] = []
    for path in paths:
        try:
            os.rmdir(path)
        except OSError as exc:
            if exc.errno != errno.ENOENT:
                problems.append(f"{path}: {exc.strerror}")
            continue
        removed.append(path)
    return removed, problems


def _unescape(field: str) -> str:
    r"""Undo mountinfo's octal escapes (``\040`` for a space)."""
    return _OCTAL.sub(lambda match: chr(int(match.group(1), 8)), field)


def mounts_under(directories: Iterable[Path], mountinfo: str | None = None) -> list[str]:
    """Mount points at or under any of ``directories``, deepest first (from ``mountinfo``, a
    /proc/self/mountinfo text, by default this process's)."""
    prefixes = [os.path.normpath(d) for d in directories]
    found = []
    text = MOUNTINFO.read_text() if mountinfo is None else mountinfo
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 5:
            continue
        point = _unescape(fields[4])
        if any(point == p or point.startswith(p + "/") for p in prefixes):
            found.append(point)
    return sorted(set(found), key=lambda p: (-p.count("/"), p))


def unmount_under(directories: Iterable[Path]) -> list[str]:
    """Detach every mount at or under ``directories`` (e.g. a pod's /dev/shm); return the mount points."""
    points = mounts_under(directories)
    for point in points:
        with contextlib.suppress(OSError):
            for _ in range(_MAX_STACKED):  # stacked mounts go one at a time
                if not mountutil.unmount(point, detach=True):
                    break
    return points


def remove_link_or_file(path: Path, symlink_only: bool = False) -> bool:
    """Unlink ``path`` (only if it is a symlink with ``symlink_only``); return whether it was removed."""
    with contextlib.suppress(OSError):
        if symlink_only and not path.is_symlink():
            return False
        path.unlink()
        return True
    return False
