"""cadvisor-compatible metrics for ListMetricDescriptors and ListPodSandboxMetrics.

Names, label keys and meanings follow cadvisor's Prometheus collector (what ``/metrics/cadvisor`` serves
when the kubelet reads stats itself), so the kubelet's ``PodAndContainerStatsFromCRI`` path serves the same
series. Every metric carries the base labels (container, id, image, name, namespace, pod), plus its own keys.
Pure: built from readings kept by :mod:`crio.core.stats.service`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from crio.core.stats.cgroups import CgroupSample, block_device_name
from crio.core.stats.netdev import Interface

COUNTER = "counter"
GAUGE = "gauge"
BASE_LABELS = ("container", "id", "image", "name", "namespace", "pod")


@dataclass(frozen=True)
class Descriptor:
    """One metric family: name, help text, type and label keys beyond :data:`BASE_LABELS`."""

    name: str
    help: str
    type: str
    extra_labels: tuple[str, ...] = ()

    @property
    def label_keys(self) -> tuple[str, ...]:
        """Every label key, base labels first."""
        return BASE_LABELS + self.extra_labels


@dataclass(frozen=True)
class Value:
    """One series: its descriptor, the values of the extra labels, the value."""

    descriptor: Descriptor
    extra_values: tuple[str, ...]
    value: float


def _d(name: str, help_text: str, kind: str, *extra: str) -> Descriptor:
    return Descriptor(name, help_text, kind, extra)


CPU_USAGE = _d(
    "container_cpu_usage_seconds_total", "Cumulative cpu time consumed in seconds.", COUNTER, "cpu"
)
CPU_USER = _d("container_cpu_user_seconds_total", "Cumulative user cpu time consumed in seconds.", COUNTER)
CPU_SYSTEM = _d(
    "container_cpu_system_seconds_total", "Cumulative system cpu time consumed in seconds.", COUNTER
)
CFS_PERIODS = _d(
    "container_cpu_cfs_periods_total", "Number of elapsed enforcement period intervals.", COUNTER
)
CFS_THROTTLED = _d(
    "container_cpu_cfs_throttled_periods_total", "Number of throttled period intervals.", COUNTER
)
CFS_THROTTLED_S = _d(
    "container_cpu_cfs_throttled_seconds_total",
    "Total time duration the container has been throttled.",
    COUNTER,
)
MEM_CACHE = _d("container_memory_cache", "Number of bytes of page cache memory.", GAUGE)
MEM_RSS = _d("container_memory_rss", "Size of RSS in bytes.", GAUGE)
MEM_MAPPED = _d("container_memory_mapped_file", "Size of memory mapped files in bytes.", GAUGE)
MEM_SWAP = _d("container_memory_swap", "Container swap usage in bytes.", GAUGE)
MEM_USAGE = _d(
    "container_memory_usage_bytes",
    "Current memory usage in bytes, including all memory regardless of when it was accessed",
    GAUGE,
)
MEM_WS = _d("container_memory_working_set_bytes", "Current working set in bytes.", GAUGE)
MEM_MAX = _d("container_memory_max_usage_bytes", "Maximum memory usage recorded in bytes", GAUGE)
MEM_FAILCNT = _d("container_memory_failcnt", "Number of memory usage hits limits", COUNTER)
MEM_KERNEL = _d("container_memory_kernel_usage", "Size of kernel memory allocated in bytes.", GAUGE)
MEM_FAILURES = _d(
    "container_memory_failures_total",
    "Cumulative count of memory allocation failures.",
    COUNTER,
    "failure_type",
    "scope",
)
OOM_EVENTS = _d(
    "container_oom_events_total", "Count of out of memory events observed for the container", COUNTER
)
PROCESSES = _d("container_processes", "Number of processes running inside the container.", GAUGE)
THREADS = _d("container_threads", "Number of threads running inside the container", GAUGE)
THREADS_MAX = _d(
    "container_threads_max",
    "Maximum number of threads allowed inside the container, infinity if value is zero",
    GAUGE,
)
FDS = _d("container_file_descriptors", "Number of open file descriptors for the container.", GAUGE)
SOCKETS = _d("container_sockets", "Number of open sockets for the container.", GAUGE)
SPEC_PERIOD = _d("container_spec_cpu_period", "CPU period of the container.", GAUGE)
SPEC_QUOTA = _d("container_spec_cpu_quota", "CPU quota of the container.", GAUGE)
SPEC_SHARES = _d("container_spec_cpu_shares", "CPU share of the container.", GAUGE)
SPEC_MEM = _d("container_spec_memory_limit_bytes", "Memory limit for the container.", GAUGE)
SPEC_SWAP = _d("container_spec_memory_swap_limit_bytes", "Memory swap limit for the container.", GAUGE)
START_TIME = _d(
    "container_start_time_seconds", "Start time of the container since unix epoch in seconds.", GAUGE
)
LAST_SEEN = _d("container_last_seen", "Last time a container was seen by the exporter", GAUGE)
FS_USAGE = _d(
    "container_fs_usage_bytes",
    "Number of bytes that are consumed by the container on this filesystem.",
    GAUGE,
    "device",
)
FS_LIMIT = _d(
    "container_fs_limit_bytes",
    "Number of bytes that can be consumed by the container on this filesystem.",
    GAUGE,
    "device",
)
FS_INODES_FREE = _d("container_fs_inodes_free", "Number of available Inodes", GAUGE, "device")
FS_INODES_TOTAL = _d("container_fs_inodes_total", "Number of Inodes", GAUGE, "device")
FS_READS_BYTES = _d("container_fs_reads_bytes_total", "Cumulative count of bytes read", COUNTER, "device")
FS_READS = _d("container_fs_reads_total", "Cumulative count of reads completed", COUNTER, "device")
FS_WRITES_BYTES = _d(
    "container_fs_writes_bytes_total", "Cumulative count of bytes written", COUNTER, "device"
)
FS_WRITES = _d("container_fs_writes_total", "Cumulative count of writes completed", COUNTER, "device")
BLKIO = _d(
    "container_blkio_device_usage_total",
    "Blkio Device bytes usage",
    COUNTER,
    "device",
    "major",
    "minor",
    "operation",
)
NET = {
    key: _d(f"container_network_{name}", help_text, COUNTER, "interface")
    for key, name, help_text in (
        ("rx_bytes", "receive_bytes_total", "Cumulative count of bytes received"),
        ("rx_packets", "receive_packets_total", "Cumulative count of packets received"),
        (
            "rx_dropped",
            "receive_packets_dropped_total",
            "Cumulative count of packets dropped while receiving",
        ),
        ("rx_errors", "receive_errors_total", "Cumulative count of errors encountered while receiving"),
        ("tx_bytes", "transmit_bytes_total", "Cumulative count of bytes transmitted"),
        ("tx_packets", "transmit_packets_total", "Cumulative count of packets transmitted"),
        (
            "tx_dropped",
            "transmit_packets_dropped_total",
            "Cumulative count of packets dropped while transmitting",
        ),
        ("tx_errors", "transmit_errors_total", "Cumulative count of errors encountered while transmitting"),
    )
}

DESCRIPTORS: tuple[Descriptor, ...] = (
    CPU_USAGE, CPU_USER, CPU_SYSTEM, CFS_PERIODS, CFS_THROTTLED, CFS_THROTTLED_S,
    MEM_CACHE, MEM_RSS, MEM_MAPPED, MEM_SWAP, MEM_USAGE, MEM_WS, MEM_MAX, MEM_FAILCNT, MEM_KERNEL,
    MEM_FAILURES,
    OOM_EVENTS, PROCESSES, THREADS, THREADS_MAX, FDS, SOCKETS,
    SPEC_PERIOD, SPEC_QUOTA, SPEC_SHARES, SPEC_MEM, SPEC_SWAP, START_TIME, LAST_SEEN,
    FS_USAGE, FS_LIMIT, FS_INODES_FREE, FS_INODES_TOTAL,
    FS_READS_BYTES, FS_READS, FS_WRITES_BYTES, FS_WRITES, BLKIO,
    *NET.values(),
)  # fmt: skip


@dataclass(frozen=True)
class Filesystem:
    """The writable layer's usage and the filesystem it lives on."""

    device: str
    used_bytes: int
    capacity_bytes: int
    inodes_free: int
    inodes_total: int


def _present(pairs: list[tuple[Descriptor, int | float | None]]) -> Iterator[Value]:
    for descriptor, value in pairs:
        if value is not None:
            yield Value(descriptor, (), float(value))


def container_values(
    sample: CgroupSample,
    started_at_ns: int,
    filesystem: Filesystem | None,
    device_name: Callable[[int, int], str] = block_device_name,
) -> list[Value]:
    """The series of one container from its latest reading (a value the cgroup lacks is left out)."""
    ns: Callable[[int | None], float | None] = lambda v: None if v is None else v / 1e9  # noqa: E731
    values = list(
        _present(
            [
                (CPU_USER, ns(sample.cpu_user_ns)),
                (CPU_SYSTEM, ns(sample.cpu_system_ns)),
                (CFS_PERIODS, sample.cfs_periods),
                (CFS_THROTTLED, sample.cfs_throttled_periods),
                (CFS_THROTTLED_S, ns(sample.cfs_throttled_ns)),
                (MEM_CACHE, sample.memory_cache),
                (MEM_RSS, sample.memory_rss),
                (MEM_MAPPED, sample.memory_mapped_file),
                (MEM_SWAP, sample.swap_usage),
                (MEM_USAGE, sample.memory_usage),
                (MEM_WS, sample.memory_working_set),
                (MEM_MAX, sample.memory_max_usage),
                (MEM_FAILCNT, sample.memory_failcnt),
                (MEM_KERNEL, sample.memory_kernel),
                (OOM_EVENTS, sample.oom_events),
                (PROCESSES, sample.processes),
                (THREADS, sample.pids),
                (THREADS_MAX, sample.pids_max if sample.pids is not None else None),
                (FDS, sample.file_descriptors),
                (SOCKETS, sample.sockets),
                (SPEC_PERIOD, sample.cpu_period),
                (SPEC_QUOTA, sample.cpu_quota),
                (SPEC_SHARES, sample.cpu_shares),
                (SPEC_MEM, sample.memory_limit if sample.memory_usage is not None else None),
                (SPEC_SWAP, sample.swap_limit),
                (START_TIME, started_at_ns / 1e9 if started_at_ns else None),
                (LAST_SEEN, sample.timestamp / 1e9),
            ]
        )
    )
    if sample.pids is not None and sample.pids_max is None:  # unlimited: cadvisor reports 0
        values.append(Value(THREADS_MAX, (), 0.0))
    if sample.cpu_usage_ns is not None:
        values.append(Value(CPU_USAGE, ("total",), sample.cpu_usage_ns / 1e9))
    for failure, count in (("pgfault", sample.page_faults), ("pgmajfault", sample.major_page_faults)):
        if count is not None:
            for scope in ("container", "hierarchy"):
                values.append(Value(MEM_FAILURES, (failure, scope), float(count)))
    for io in sample.io or ():
        name = device_name(io.major, io.minor)
        values += [
            Value(FS_READS_BYTES, (name,), float(io.read_bytes)),
            Value(FS_READS, (name,), float(io.reads)),
            Value(FS_WRITES_BYTES, (name,), float(io.write_bytes)),
            Value(FS_WRITES, (name,), float(io.writes)),
            Value(BLKIO, (name, str(io.major), str(io.minor), "Read"), float(io.read_bytes)),
            Value(BLKIO, (name, str(io.major), str(io.minor), "Write"), float(io.write_bytes)),
        ]
    if filesystem is not None:
        device = (filesystem.device,)
        values += [
            Value(FS_USAGE, device, float(filesystem.used_bytes)),
            Value(FS_LIMIT, device, float(filesystem.capacity_bytes)),
            Value(FS_INODES_FREE, device, float(filesystem.inodes_free)),
            Value(FS_INODES_TOTAL, device, float(filesystem.inodes_total)),
        ]
    return values


def network_values(interfaces: list[Interface]) -> list[Value]:
    """The network series of a pod, one per interface and counter."""
    return [
        Value(descriptor, (interface.name,), float(getattr(interface, key)))
        for interface in interfaces
        for key, descriptor in NET.items()
    ]
