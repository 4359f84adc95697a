"""Placing the monitor (conmon) in its own cgroupfs cgroup, never in the container's.

The monitor cgroup is a path relative to the cgroup root, as the core passes it. The hierarchies are the
cgroup and cgroup2 mounts in /proc/self/mountinfo:

* cgroup v1 (and the v1 part of a hybrid host): the directory is created under every mounted hierarchy
  (each controller's, and named ones such as ``name=systemd``) and the pid written to its ``cgroup.procs``.
  A new cpuset cgroup starts with empty ``cpuset.cpus``/``cpuset.mems`` (unless ``cgroup.clone_children``
  is set), which would refuse the pid, so each directory created there copies its parent's values.
* the empty cgroup2 hierarchy of a hybrid host (``/sys/fs/cgroup/unified``): it has no controllers, so the
  move is always allowed; the monitor is moved there too, which keeps it out of the container's cgroup in
  every hierarchy runc itself uses.
* cgroup v2 alone: the same directory in the single hierarchy. The kernel's "no internal processes" rule
  applies: if the monitor cgroup has controllers enabled in its own ``cgroup.subtree_control`` (it is an
  inner node), the write fails with EBUSY and the create fails with that message. A fresh leaf (the usual
  case, e.g. ``<pod cgroup>/crio-conmon-<id>``) always accepts the pid.

All functions here block (plain file I/O on cgroupfs); callers run them in a worker thread.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

MOUNTINFO = Path("/proc/self/mountinfo")
# cgroup v1 super options that are not controllers.
_V1_FLAGS = frozenset({"rw", "ro", "xattr", "noprefix", "clone_children", "cpuset_v2_mode", "favordynmods"})


@dataclass(frozen=True)
class Hierarchy:
    """One mounted cgroup hierarchy: where it is, its version and (v1) its controllers or name."""

    mountpoint: Path
    version: int
    controllers: tuple[str, ...] = ()

    @property
    def is_cpuset(self) -> bool:
        """Whether this v1 hierarchy carries the cpuset controller."""
        return self.version == 1 and "cpuset" in self.controllers


def _unescape(field: str) -> str:
    """Undo mountinfo's octal escapes (``\\040`` for a space)."""
    if "\\" not in field:
        return field
    out = []
    i = 0
    while i < len(field):
        digits = field[i + 1 : i + 4]
        if field[i] == "\\" and len(digits) == 3 and digits.isdigit():
            out.append(chr(int(field[i + 1 : i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def parse_mountinfo(text: str) -> list[Hierarchy]:
    """Return the cgroup hierarchies of a mountinfo text, one per hierarchy (duplicate mounts dropped)."""
    seen: set[tuple[int, tuple[str, ...]]] = set()
    found: list[Hierarchy] = []
    for line in text.splitlines():
        left, sep, right = line.partition(" - ")
        if not sep:
            continue
        fields = left.split()
        tail = right.split()
        if len(fields) < 5 or len(tail) < 3 or tail[0] not in ("cgroup", "cgroup2"):
            continue
        mountpoint = Path(_unescape(fields[4]))
        if tail[0] == "cgroup2":
            key: tuple[int, tuple[str, ...]] = (2, ())
            hierarchy = Hierarchy(mountpoint, 2)
        else:
            options = tail[2].split(",")
            controllers = tuple(sorted(o for o in options if o not in _V1_FLAGS and "=" not in o))
            controllers += tuple(o for o in options if o.startswith("name="))
            key = (1, controllers)
            hierarchy = Hierarchy(mountpoint, 1, controllers)
        if key in seen:
            continue
        seen.add(key)
        found.append(hierarchy)
    return found


def hierarchies() -> list[Hierarchy]:
    """The host's mounted cgroup hierarchies."""
    return parse_mountinfo(MOUNTINFO.read_text())


def relative(cgroup: str) -> str:
    """A cgroup path without its leading slash, refusing ``..`` components."""
    parts = [p for p in cgroup.split("/") if p not in ("", ".")]
    if any(p == ".." for p in parts):
        raise ValueError(f"cgroup path {cgroup!r} must not contain '..'")
    return "/".join(parts)


def overlaps(monitor_cgroup: str, container_cgroup: str) -> bool:
    """Whether the monitor cgroup is the container's cgroupfs cgroup or lies inside it.

    A systemd-style container path (``slice:prefix:name``) never names a cgroupfs directory: no overlap.
    """
    if not container_cgroup or ":" in container_cgroup:
        return False
    monitor, container = relative(monitor_cgroup), relative(container_cgroup)
    return monitor == container or monitor.startswith(container + "/")


def _copy_cpuset(directory: Path) -> None:
    """Give a new v1 cpuset cgroup its parent's cpus and mems, so it accepts tasks."""
    for name in ("cpuset.cpus", "cpuset.mems"):
        own = directory / name
        if own.read_text().strip():
            continue
        own.write_text((directory.parent / name).read_text().strip() or "\n")


def _make_dirs(hierarchy: Hierarchy, target: Path) -> None:
    missing: list[Path] = []
    current = target
    while not current.exists() and current != hierarchy.mountpoint:
        missing.append(current)
        current = current.parent
    for directory in reversed(missing):
        with contextlib.suppress(FileExistsError):
            directory.mkdir()
        if hierarchy.is_cpuset:
            _copy_cpuset(directory)


def move_pid(pid: int, cgroup: str, found: list[Hierarchy] | None = None) -> list[Path]:
    """Move ``pid`` into ``cgroup`` in every hierarchy, creating the directories; return them.

    Raises OSError (with the directory in its message) when a hierarchy refuses the pid.
    """
    rel = relative(cgroup)
    if not rel:
        raise ValueError("the monitor cgroup must not be the root cgroup")
    placed: list[Path] = []
    for hierarchy in hierarchies() if found is None else found:
        target = hierarchy.mountpoint / rel
        try:
            _make_dirs(hierarchy, target)
            (target / "cgroup.procs").write_text(f"{pid}\n")
        except OSError as exc:
            raise OSError(exc.errno, f"cannot move pid {pid} into {target}: {exc.strerror}") from None
        placed.append(target)
    log.debug("moved monitor pid %d into %s", pid, ", ".join(map(str, placed)))
    return placed


def remove(cgroup: str, found: list[Hierarchy] | None = None) -> None:
    """Remove the leaf directory of ``cgroup`` in every hierarchy; busy or absent ones are left alone."""
    rel = relative(cgroup)
    if not rel:
        return
    for hierarchy in hierarchies() if found is None else found:
        target = hierarchy.mountpoint / rel
        try:
            os.rmdir(target)
        except OSError as exc:
            if exc.errno not in (errno.ENOENT, errno.EBUSY, errno.ENOTEMPTY):
                log.warning("cannot remove monitor cgroup %s: %s", target, exc.strerror)
            elif exc.errno != errno.ENOENT:
                log.debug("monitor cgroup %s still in use: %s", target, exc.strerror)


def cgroup_of(pid: int) -> dict[str, str]:
    """``/proc/<pid>/cgroup`` as a map from hierarchy (controllers, or "" for v2) to path."""
    result: dict[str, str] = {}
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        result[controllers] = path
    return result
