"""Container resource usage read from cgroupfs (v1 and v2): CPU time, memory working set.

Reads are small files under /sys/fs/cgroup; callers run :func:`read_usage` in a worker thread.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")


@dataclass(frozen=True)
class Usage:
    """One sample of a container's usage. Missing values are None (the cgroup is gone or unsupported)."""

    timestamp: int
    cpu_usage_ns: int | None
    memory_usage: int | None
    memory_working_set: int | None
    memory_rss: int | None
    page_faults: int | None
    major_page_faults: int | None


@lru_cache(maxsize=1)
def controller_roots() -> dict[str, Path]:
    """Mount points of the cgroup v1 controllers (``cpuacct``, ``memory``) and of cgroup v2 (key ``""``)."""
    roots: dict[str, Path] = {}
    with open("/proc/self/mountinfo", encoding="utf-8") as handle:
        for line in handle:
            fields = line.split()
            separator = fields.index("-")
            fstype, options = fields[separator + 1], fields[separator + 3]
            point = Path(fields[4])
            if fstype == "cgroup":
                for option in options.split(","):
                    roots.setdefault(option, point)
            elif fstype == "cgroup2":
                roots.setdefault("", point)
    return roots


def _read_int(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _read_keyed(path: Path) -> dict[str, int]:
    values: dict[str, int] = {}
    try:
        text = path.read_text()
    except OSError:
        return values
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        if value.strip().isdigit():
            values[key] = int(value)
    return values


def _v2_has(cgroup: Path, name: str) -> bool:
    return (cgroup / name).exists()


def read_usage(cgroups_path: str) -> Usage:
    """Sample the usage of the cgroup ``cgroups_path`` (cgroupfs form, e.g. ``/crio/crio-<id>``)."""
    relative = cgroups_path.lstrip("/")
    roots = controller_roots()
    now = time.time_ns()
    cpuacct, memory = roots.get("cpuacct"), roots.get("memory")
    if cpuacct is not None and memory is not None:
        cpu = _read_int(cpuacct / relative / "cpuacct.usage")
        mem_dir = memory / relative
        usage = _read_int(mem_dir / "memory.usage_in_bytes")
        stat = _read_keyed(mem_dir / "memory.stat")
        inactive = stat.get("total_inactive_file", 0)
        working = None if usage is None else max(usage - inactive, 0)
        return Usage(
            now,
            cpu,
            usage,
            working,
            stat.get("total_rss"),
            stat.get("total_pgfault"),
            stat.get("total_pgmajfault"),
        )
    unified = roots.get("")
    if unified is None or not _v2_has(unified / relative, "cgroup.procs"):
        return Usage(now, None, None, None, None, None, None)
    cgroup = unified / relative
    cpu_stat = _read_keyed(cgroup / "cpu.stat")
    cpu_ns = cpu_stat["usage_usec"] * 1000 if "usage_usec" in cpu_stat else None
    usage = _read_int(cgroup / "memory.current")
    stat = _read_keyed(cgroup / "memory.stat")
    working = None if usage is None else max(usage - stat.get("inactive_file", 0), 0)
    return Usage(now, cpu_ns, usage, working, stat.get("anon"), stat.get("pgfault"), stat.get("pgmajfault"))


def nano_cores(previous: tuple[int, int] | None, current: Usage) -> int | None:
    """CPU usage in nanocores between ``previous`` (timestamp, cpu ns) and ``current``."""
    if previous is None or current.cpu_usage_ns is None:
        return None
    elapsed = current.timestamp - previous[0]
    if elapsed <= 0:
        return None
    return max(current.cpu_usage_ns - previous[1], 0) * 1_000_000_000 // elapsed
