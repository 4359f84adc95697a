"""Read one cgroup's usage from cgroupfs, v1 (per-controller hierarchies) or v2 (unified).

Pure readers over a directory tree, so unit tests run them on fake trees. Callers run :func:`read_cgroup`
in a worker thread: it reads a handful of small files.
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

UNLIMITED = 1 << 62  # cgroup v1 reports "no limit" as a page-rounded 2^63-1; anything above this is unlimited


@dataclass(frozen=True)
class DeviceIO:
    """Block I/O of a cgroup on one device (blkio.throttle.* on v1, io.stat on v2)."""

    major: int
    minor: int
    read_bytes: int = 0
    write_bytes: int = 0
    reads: int = 0
    writes: int = 0


@dataclass(frozen=True)
class CgroupSample:
    """One reading of a cgroup; a value the hierarchy lacks (or a gone cgroup) is None."""

    timestamp: int
    cpu_usage_ns: int | None = None
    cpu_user_ns: int | None = None
    cpu_system_ns: int | None = None
    cfs_periods: int | None = None
    cfs_throttled_periods: int | None = None
    cfs_throttled_ns: int | None = None
    memory_usage: int | None = None
    memory_max_usage: int | None = None
    memory_limit: int | None = None
    memory_working_set: int | None = None
    memory_rss: int | None = None
    memory_cache: int | None = None
    memory_mapped_file: int | None = None
    memory_kernel: int | None = None
    memory_failcnt: int | None = None
    page_faults: int | None = None
    major_page_faults: int | None = None
    swap_usage: int | None = None
    swap_limit: int | None = None
    oom_events: int | None = None
    pids: int | None = None
    pids_max: int | None = None
    cpu_period: int | None = None  # microseconds
    cpu_quota: int | None = None  # microseconds per period; None = unlimited
    cpu_shares: int | None = None
    processes: int | None = None
    file_descriptors: int | None = None
    sockets: int | None = None
    io: tuple[DeviceIO, ...] | None = None  # per block device; not summed across cgroups

    @property
    def memory_available(self) -> int | None:
        """Limit minus working set, when the cgroup has a memory limit."""
        if self.memory_limit is None or self.memory_working_set is None:
            return None
        return max(self.memory_limit - self.memory_working_set, 0)

    @property
    def swap_available(self) -> int | None:
        """Swap limit minus swap usage, when the cgroup has a swap limit."""
        if self.swap_limit is None or self.swap_usage is None:
            return None
        return max(self.swap_limit - self.swap_usage, 0)


@dataclass(frozen=True)
class Hierarchy:
    """Where the controllers are mounted: v1 controller name → mount point, or the v2 mount (``unified``)."""

    v1: dict[str, Path]
    unified: Path | None

    @property
    def is_v1(self) -> bool:
        """True when the memory and cpuacct controllers are on v1 hierarchies (this is what runc uses)."""
        return "memory" in self.v1 and "cpuacct" in self.v1


def parse_mountinfo(text: str) -> Hierarchy:
    """The cgroup mounts listed in a ``/proc/self/mountinfo`` text."""
    v1: dict[str, Path] = {}
    unified: Path | None = None
    for line in text.splitlines():
        fields = line.split()
        if "-" not in fields:
            continue
        separator = fields.index("-")
        fstype, options = fields[separator + 1], fields[separator + 3]
        point = Path(fields[4])
        if fstype == "cgroup":
            for option in options.split(","):
                v1.setdefault(option, point)
        elif fstype == "cgroup2" and unified is None:
            unified = point
    return Hierarchy(v1, unified)


@lru_cache(maxsize=1)
def host_hierarchy() -> Hierarchy:
    """This host's cgroup mounts (read once)."""
    with open("/proc/self/mountinfo", encoding="utf-8") as handle:
        return parse_mountinfo(handle.read())


def _text(path: Path) -> str | None:
    """A small cgroup or proc file (raw reads: a third of the cost of ``open()`` in text mode)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        chunks = []
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
        return b"".join(chunks).decode("ascii", "replace")
    except OSError:
        return None
    finally:
        os.close(fd)


def _int(path: Path) -> int | None:
    """A one-number file; ``max`` (v2 "no limit") and v1's huge "no limit" are None."""
    text = _text(path)
    if text is None:
        return None
    try:
        value = int(text.split()[0])
    except (ValueError, IndexError):
        return None
    return None if value >= UNLIMITED else value


def parse_keyed(text: str | None) -> dict[str, int]:
    """``key value`` lines (memory.stat, cpu.stat, memory.events) as a dict; other lines are skipped."""
    values: dict[str, int] = {}
    for line in (text or "").splitlines():
        key, _, value = line.partition(" ")
        try:
            values[key] = int(value.strip())
        except ValueError:
            continue
    return values


def _working_set(usage: int | None, inactive_file: int) -> int | None:
    return None if usage is None else max(usage - inactive_file, 0)


def _positive(value: int | None) -> int | None:
    return value if value is not None and value > 0 else None


def _cpu_max(text: str | None, weight: int | None) -> dict[str, int | None]:
    """cpu.max (``quota period``; quota ``max`` = unlimited) and cpu.weight as v1 period/quota/shares."""
    fields = (text or "").split()
    period = int(fields[1]) if len(fields) == 2 and fields[1].isdigit() else None
    quota = int(fields[0]) if fields and fields[0].isdigit() else None
    shares = None if weight is None else 2 + ((weight - 1) * 262142) // 9999
    return {"cpu_period": period, "cpu_quota": quota, "cpu_shares": shares}


def _processes(cgroup: Path) -> dict[str, int | None]:
    """Processes of a cgroup (cgroup.procs) and their open file descriptors and sockets (/proc/PID/fd)."""
    text = _text(cgroup / "cgroup.procs")
    if text is None:
        return {"processes": None, "file_descriptors": None, "sockets": None}
    pids = text.split()
    fds = sockets = 0
    for pid in pids:
        try:
            names = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        fds += len(names)
        for name in names:
            try:
                if os.readlink(f"/proc/{pid}/fd/{name}").startswith("socket:"):
                    sockets += 1
            except OSError:
                continue
    return {"processes": len(pids), "file_descriptors": fds, "sockets": sockets}


@lru_cache(maxsize=256)
def block_device_name(major: int, minor: int) -> str:
    """``/dev/<name>`` of a block device from sysfs, or ``MAJ:MIN`` when sysfs does not name it."""
    text = _text(Path(f"/sys/dev/block/{major}:{minor}/uevent")) or ""
    for line in text.splitlines():
        key, _, value = line.partition("=")
        if key == "DEVNAME" and value:
            return f"/dev/{value}"
    return f"{major}:{minor}"


def parse_blkio_v1(service_bytes: str | None, serviced: str | None) -> tuple[DeviceIO, ...] | None:
    """``blkio.throttle.io_service_bytes_recursive`` and ``..._io_serviced_recursive`` as per-device I/O."""
    if service_bytes is None:
        return None
    devices: dict[tuple[int, int], dict[str, int]] = {}
    for text, suffix in ((service_bytes, "_bytes"), (serviced or "", "s")):
        for line in text.splitlines():
            fields = line.split()
            if len(fields) != 3 or fields[1] not in ("Read", "Write") or ":" not in fields[0]:
                continue
            major, _, minor = fields[0].partition(":")
            key = ("read" if fields[1] == "Read" else "write") + suffix
            with contextlib.suppress(ValueError):
                devices.setdefault((int(major), int(minor)), {})[key] = int(fields[2])
    return tuple(DeviceIO(major, minor, **values) for (major, minor), values in sorted(devices.items()))


def parse_io_stat(text: str | None) -> tuple[DeviceIO, ...] | None:
    """cgroup v2 ``io.stat`` (``MAJ:MIN rbytes=N wbytes=N rios=N wios=N ...``) as per-device I/O."""
    if text is None:
        return None
    names = {"rbytes": "read_bytes", "wbytes": "write_bytes", "rios": "reads", "wios": "writes"}
    result = []
    for line in text.splitlines():
        fields = line.split()
        if not fields or ":" not in fields[0]:
            continue
        major, _, minor = fields[0].partition(":")
        values = {}
        for field in fields[1:]:
            key, _, value = field.partition("=")
            if key in names and value.isdigit():
                values[names[key]] = int(value)
        with contextlib.suppress(ValueError):
            result.append(DeviceIO(int(major), int(minor), **values))
    return tuple(result)


def read_v1(hierarchy: Hierarchy, relative: str, now: int) -> CgroupSample:
    """Read cgroup ``relative`` from the v1 controllers; a gone cgroup gives a sample of Nones."""
    cpuacct = hierarchy.v1["cpuacct"] / relative
    cpu = hierarchy.v1.get("cpu", hierarchy.v1["cpuacct"]) / relative
    mem = hierarchy.v1["memory"] / relative
    usage = _int(mem / "memory.usage_in_bytes")
    if usage is None and _int(cpuacct / "cpuacct.usage") is None:
        return CgroupSample(now)
    stat = parse_keyed(_text(mem / "memory.stat"))
    cpu_stat = parse_keyed(_text(cpu / "cpu.stat"))
    acct = parse_keyed(_text(cpuacct / "cpuacct.stat"))  # USER_HZ ticks
    ticks = 1_000_000_000 // 100
    memsw = _int(mem / "memory.memsw.usage_in_bytes")
    memsw_limit = _int(mem / "memory.memsw.limit_in_bytes")
    limit = _int(mem / "memory.limit_in_bytes")
    pids_dir = hierarchy.v1["pids"] / relative if "pids" in hierarchy.v1 else None
    oom = parse_keyed(_text(mem / "memory.oom_control"))
    blkio = hierarchy.v1["blkio"] / relative if "blkio" in hierarchy.v1 else None
    return CgroupSample(
        timestamp=now,
        cpu_usage_ns=_int(cpuacct / "cpuacct.usage"),
        cpu_user_ns=acct["user"] * ticks if "user" in acct else None,
        cpu_system_ns=acct["system"] * ticks if "system" in acct else None,
        cfs_periods=cpu_stat.get("nr_periods"),
        cfs_throttled_periods=cpu_stat.get("nr_throttled"),
        cfs_throttled_ns=cpu_stat.get("throttled_time"),
        memory_usage=usage,
        memory_max_usage=_int(mem / "memory.max_usage_in_bytes"),
        memory_limit=limit,
        memory_working_set=_working_set(usage, stat.get("total_inactive_file", 0)),
        memory_rss=stat.get("total_rss"),
        memory_cache=stat.get("total_cache"),
        memory_mapped_file=stat.get("total_mapped_file"),
        memory_kernel=_int(mem / "memory.kmem.usage_in_bytes"),
        memory_failcnt=_int(mem / "memory.failcnt"),
        page_faults=stat.get("total_pgfault"),
        major_page_faults=stat.get("total_pgmajfault"),
        swap_usage=None if memsw is None or usage is None else max(memsw - usage, 0),
        swap_limit=None if memsw_limit is None or limit is None else max(memsw_limit - limit, 0),
        oom_events=oom.get("oom_kill"),
        pids=_int(pids_dir / "pids.current") if pids_dir else None,
        pids_max=_int(pids_dir / "pids.max") if pids_dir else None,
        cpu_period=_int(cpu / "cpu.cfs_period_us"),
        cpu_quota=_positive(_int(cpu / "cpu.cfs_quota_us")),
        cpu_shares=_int(cpu / "cpu.shares"),
        **_processes(hierarchy.v1.get("pids", hierarchy.v1["cpuacct"]) / relative),
        io=parse_blkio_v1(
            _text(blkio / "blkio.throttle.io_service_bytes_recursive"),
            _text(blkio / "blkio.throttle.io_serviced_recursive"),
        )
        if blkio is not None
        else None,
    )


def read_v2(root: Path, relative: str, now: int) -> CgroupSample:
    """Read cgroup ``relative`` of the unified hierarchy at ``root``; a gone cgroup gives Nones."""
    cgroup = root / relative
    if not (cgroup / "cgroup.procs").exists():
        return CgroupSample(now)
    cpu = parse_keyed(_text(cgroup / "cpu.stat"))
    stat = parse_keyed(_text(cgroup / "memory.stat"))
    events = parse_keyed(_text(cgroup / "memory.events"))
    usage = _int(cgroup / "memory.current")
    kernel = None
    if "kernel" in stat:
        kernel = stat["kernel"]
    elif "kernel_stack" in stat or "slab" in stat:
        kernel = stat.get("kernel_stack", 0) + stat.get("slab", 0) + stat.get("sock", 0)

    def usec(key: str) -> int | None:
        return cpu[key] * 1000 if key in cpu else None

    return CgroupSample(
        timestamp=now,
        cpu_usage_ns=usec("usage_usec"),
        cpu_user_ns=usec("user_usec"),
        cpu_system_ns=usec("system_usec"),
        cfs_periods=cpu.get("nr_periods"),
        cfs_throttled_periods=cpu.get("nr_throttled"),
        cfs_throttled_ns=usec("throttled_usec"),
        memory_usage=usage,
        memory_max_usage=_int(cgroup / "memory.peak"),
        memory_limit=_int(cgroup / "memory.max"),
        memory_working_set=_working_set(usage, stat.get("inactive_file", 0)),
        memory_rss=stat.get("anon"),
        memory_cache=stat.get("file"),
        memory_mapped_file=stat.get("file_mapped"),
        memory_kernel=kernel,
        memory_failcnt=events.get("max"),
        page_faults=stat.get("pgfault"),
        major_page_faults=stat.get("pgmajfault"),
        swap_usage=_int(cgroup / "memory.swap.current"),
        swap_limit=_int(cgroup / "memory.swap.max"),
        oom_events=events.get("oom_kill"),
        pids=_int(cgroup / "pids.current"),
        pids_max=_int(cgroup / "pids.max"),
        **_cpu_max(_text(cgroup / "cpu.max"), _int(cgroup / "cpu.weight")),
        **_processes(cgroup),
        io=parse_io_stat(_text(cgroup / "io.stat")),
    )


def read_cgroup(
    cgroups_path: str, hierarchy: Hierarchy | None = None, now: int | None = None
) -> CgroupSample:
    """Sample the cgroup ``cgroups_path`` (cgroupfs form, e.g. ``/crio/crio-<id>``) on v1 or v2."""
    hierarchy = hierarchy or host_hierarchy()
    relative = cgroups_path.lstrip("/")
    now = time.time_ns() if now is None else now
    if hierarchy.is_v1:
        return read_v1(hierarchy, relative, now)
    if hierarchy.unified is not None:
        return read_v2(hierarchy.unified, relative, now)
    return CgroupSample(now)


def nano_cores(previous: CgroupSample | None, current: CgroupSample) -> int | None:
    """CPU usage in nanocores between two samples of one cgroup (None without two CPU readings)."""
    if previous is None or previous.cpu_usage_ns is None or current.cpu_usage_ns is None:
        return None
    elapsed = current.timestamp - previous.timestamp
    if elapsed <= 0:
        return None
    return max(current.cpu_usage_ns - previous.cpu_usage_ns, 0) * 1_000_000_000 // elapsed
