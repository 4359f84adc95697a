"""The stats readers (cgroup v1 and v2 over fake trees, /proc/net/dev), the rate, the sampler and metrics."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from crio.core.containers.model import Container
from crio.core.crirecords import ContainerConfig, ContainerMetadata
from crio.core.crirecords.pod import PodSandboxConfig, PodSandboxMetadata
from crio.core.events import CONTAINER, REMOVED, EventBus
from crio.core.sandbox.model import Sandbox
from crio.core.stats import cgroups, metrics, netdev, service
from crio.core.stats.cgroups import CgroupSample, Hierarchy

MOUNTINFO = """\
25 1 0:22 / / rw - ext4 /dev/sda1 rw
30 25 0:26 / /sys/fs/cgroup/unified rw,nosuid - cgroup2 cgroup2 rw,nsdelegate
31 25 0:27 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct
32 25 0:28 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory
33 25 0:29 / /sys/fs/cgroup/pids rw - cgroup cgroup rw,pids
"""

NET_DEV = (
    "Inter-|   Receive                                                |  Transmit\n"
    " face |bytes packets errs drop fifo frame compressed multicast|bytes packets errs drop fifo colls"
    " carrier compressed\n"
    "    lo: 100 2 0 0 0 0 0 0 100 2 0 0 0 0 0 0\n"
    "  eth0: 5000 40 1 2 0 0 0 0 3000 30 3 4 0 0 0 0\n"
)


def write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_mountinfo_finds_v1_controllers_and_the_unified_mount() -> None:
    found = cgroups.parse_mountinfo(MOUNTINFO)
    assert found.v1["cpuacct"] == found.v1["cpu"] == Path("/sys/fs/cgroup/cpu,cpuacct")
    assert found.v1["memory"] == Path("/sys/fs/cgroup/memory")
    assert found.unified == Path("/sys/fs/cgroup/unified")
    assert found.is_v1
    assert not cgroups.parse_mountinfo(MOUNTINFO.splitlines()[1]).is_v1


def test_v2_reads_cpu_memory_swap_pids_and_limits(tmp_path: Path) -> None:
    write(
        tmp_path / "crio/crio-c1",
        {
            "cgroup.procs": "",
            "cpu.stat": "usage_usec 2500\nuser_usec 2000\nsystem_usec 500\nnr_periods 7\nnr_throttled 2\n"
            "throttled_usec 30\n",
            "cpu.max": "20000 100000\n",
            "cpu.weight": "100\n",
            "memory.current": "10000\n",
            "memory.max": "65536\n",
            "memory.peak": "12000\n",
            "memory.stat": "anon 4000\nfile 5000\nfile_mapped 300\ninactive_file 1500\nkernel 700\n"
            "pgfault 11\npgmajfault 1\n",
            "memory.events": "low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n",
            "memory.swap.current": "256\n",
            "memory.swap.max": "max\n",
            "pids.current": "3\n",
            "pids.max": "max\n",
        },
    )
    hierarchy = Hierarchy({}, tmp_path)
    sample = cgroups.read_cgroup("/crio/crio-c1", hierarchy, now=42)
    assert sample == CgroupSample(
        timestamp=42,
        cpu_usage_ns=2_500_000,
        cpu_user_ns=2_000_000,
        cpu_system_ns=500_000,
        cfs_periods=7,
        cfs_throttled_periods=2,
        cfs_throttled_ns=30_000,
        memory_usage=10000,
        memory_max_usage=12000,
        memory_limit=65536,
        memory_working_set=8500,
        memory_rss=4000,
        memory_cache=5000,
        memory_mapped_file=300,
        memory_kernel=700,
        memory_failcnt=3,
        page_faults=11,
        major_page_faults=1,
        swap_usage=256,
        swap_limit=None,
        oom_events=1,
        pids=3,
        pids_max=None,
        cpu_period=100000,
        cpu_quota=20000,
        cpu_shares=2597,  # weight 100 through the inverse of runc's shares-to-weight mapping
        processes=0,
        file_descriptors=0,
        sockets=0,
    )
    assert sample.memory_available == 65536 - 8500
    assert sample.swap_available is None


def test_v1_reads_each_controller(tmp_path: Path) -> None:
    cpu, mem, pids = tmp_path / "cpu,cpuacct", tmp_path / "memory", tmp_path / "pids"
    write(
        cpu / "crio/crio-c1",
        {
            "cpuacct.usage": "9000000\n",
            "cpuacct.stat": "user 3\nsystem 1\n",
            "cpu.stat": "nr_periods 5\nnr_throttled 1\nthrottled_time 777\n",
            "cpu.cfs_period_us": "100000\n",
            "cpu.cfs_quota_us": "-1\n",
            "cpu.shares": "2\n",
            "cgroup.procs": "",
        },
    )
    write(
        mem / "crio/crio-c1",
        {
            "memory.usage_in_bytes": "8192\n",
            "memory.max_usage_in_bytes": "9000\n",
            "memory.limit_in_bytes": "9223372036854771712\n",
            "memory.memsw.usage_in_bytes": "8704\n",
            "memory.memsw.limit_in_bytes": "9223372036854771712\n",
            "memory.stat": "cache 1\ntotal_cache 2048\ntotal_rss 4096\ntotal_mapped_file 10\n"
            "total_inactive_file 1024\ntotal_pgfault 50\ntotal_pgmajfault 5\n",
            "memory.failcnt": "0\n",
            "memory.kmem.usage_in_bytes": "300\n",
            "memory.oom_control": "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n",
        },
    )
    write(pids / "crio/crio-c1", {"pids.current": "4\n", "pids.max": "max\n", "cgroup.procs": ""})
    hierarchy = Hierarchy({"cpu": cpu, "cpuacct": cpu, "memory": mem, "pids": pids}, None)
    sample = cgroups.read_cgroup("/crio/crio-c1", hierarchy, now=1)
    assert sample.cpu_usage_ns == 9_000_000
    assert (sample.cpu_user_ns, sample.cpu_system_ns) == (30_000_000, 10_000_000)
    assert (sample.cfs_periods, sample.cfs_throttled_periods, sample.cfs_throttled_ns) == (5, 1, 777)
    assert (sample.cpu_period, sample.cpu_quota, sample.cpu_shares) == (100000, None, 2)
    assert sample.memory_usage == 8192
    assert sample.memory_working_set == 8192 - 1024
    assert (sample.memory_rss, sample.memory_cache, sample.memory_mapped_file) == (4096, 2048, 10)
    assert sample.memory_limit is None  # "no limit"
    assert sample.memory_available is None
    assert sample.swap_usage == 512
    assert (sample.page_faults, sample.major_page_faults, sample.oom_events) == (50, 5, 2)
    assert (sample.pids, sample.pids_max) == (4, None)


@pytest.mark.parametrize("v1", [True, False])
def test_a_gone_cgroup_reads_as_nothing(tmp_path: Path, v1: bool) -> None:
    hierarchy = Hierarchy({"cpuacct": tmp_path, "memory": tmp_path}, None) if v1 else Hierarchy({}, tmp_path)
    assert cgroups.read_cgroup("/crio/crio-gone", hierarchy, now=5) == CgroupSample(5)


@pytest.mark.parametrize(
    ("previous", "current", "expected"),
    [
        (None, CgroupSample(10, cpu_usage_ns=5), None),
        (CgroupSample(0, cpu_usage_ns=0), CgroupSample(1_000_000_000, cpu_usage_ns=500_000_000), 500_000_000),
        (
            CgroupSample(0, cpu_usage_ns=0),
            CgroupSample(500_000_000, cpu_usage_ns=1_000_000_000),
            2_000_000_000,
        ),
        (CgroupSample(5, cpu_usage_ns=100), CgroupSample(5, cpu_usage_ns=200), None),  # no time passed
        (CgroupSample(0, cpu_usage_ns=900), CgroupSample(10, cpu_usage_ns=100), 0),  # counter went back
        (CgroupSample(0), CgroupSample(10, cpu_usage_ns=100), None),
    ],
)
def test_nano_cores(previous: CgroupSample | None, current: CgroupSample, expected: int | None) -> None:
    assert cgroups.nano_cores(previous, current) == expected


def test_net_dev_skips_loopback_and_reads_counters() -> None:
    assert netdev.parse_net_dev(NET_DEV) == [netdev.Interface("eth0", 5000, 40, 1, 2, 3000, 30, 3, 4)]
    assert netdev.parse_net_dev("header\nheader\n  bad: 1 2\n") == []


def test_pod_interfaces_need_the_infra_process_in_the_pinned_netns(tmp_path: Path) -> None:
    assert netdev.read_pod_interfaces("", 1) is None
    assert netdev.read_pod_interfaces(str(tmp_path / "missing"), 1) is None
    # Our own netns file is not the pinned file given: refused (a reused pid must not report another netns).
    other = tmp_path / "netns"
    other.write_text("")
    assert netdev.read_pod_interfaces(str(other), os.getpid()) is None
    assert netdev.read_pod_interfaces(f"/proc/{os.getpid()}/ns/net", os.getpid()) is not None


def test_block_io_v1_and_v2() -> None:
    service_bytes = "8:0 Read 4096\n8:0 Write 8192\n8:0 Sync 0\n8:0 Total 12288\nTotal 12288\n"
    serviced = "8:0 Read 1\n8:0 Write 2\n8:0 Total 3\nTotal 3\n"
    assert cgroups.parse_blkio_v1(service_bytes, serviced) == (cgroups.DeviceIO(8, 0, 4096, 8192, 1, 2),)
    assert cgroups.parse_blkio_v1(None, None) is None
    io_stat = (
        "8:16 rbytes=10 wbytes=20 rios=1 wios=2 dbytes=0 dios=0\n253:0 rbytes=5 wbytes=0 rios=1 wios=0\n"
    )
    assert cgroups.parse_io_stat(io_stat) == (
        cgroups.DeviceIO(8, 16, 10, 20, 1, 2),
        cgroups.DeviceIO(253, 0, 5, 0, 1, 0),
    )
    assert cgroups.block_device_name(0, 0) == "0:0"  # sysfs names no such device


def test_summed_adds_present_fields_only() -> None:
    total = service.summed([CgroupSample(1, cpu_usage_ns=5, pids=1), CgroupSample(2, cpu_usage_ns=7)], 9)
    assert (total.timestamp, total.cpu_usage_ns, total.pids, total.memory_usage) == (9, 12, 1, None)


def test_every_descriptor_has_label_keys_help_and_a_series_from_a_full_reading() -> None:
    names = [d.name for d in metrics.DESCRIPTORS]
    assert len(names) == len(set(names))
    fields = {f: 1 for f in CgroupSample.__dataclass_fields__ if f not in ("timestamp", "io")}
    full = CgroupSample(10**9, io=(cgroups.DeviceIO(8, 0, 1, 2, 3, 4),), **fields)  # every field present
    fs = metrics.Filesystem("/var/lib/containers", 10, 100, 5, 50)
    values = metrics.container_values(full, 10**9, fs, lambda major, minor: "/dev/sda")
    values += metrics.network_values([netdev.Interface("eth0", 1, 2, 3, 4, 5, 6, 7, 8)])
    reported = {v.descriptor.name for v in values}
    assert set(names) == reported
    for value in values:
        assert value.descriptor.help and value.descriptor.label_keys[:6] == metrics.BASE_LABELS
        assert len(value.extra_values) == len(value.descriptor.extra_labels)
    for name in (
        "container_cpu_usage_seconds_total",
        "container_memory_working_set_bytes",
        "container_network_receive_bytes_total",
    ):
        assert name in reported


# ------------------------------------------------------------------------------------------------ sampler


def _container(object_id: str, pod_id: str) -> Container:
    return Container(
        id=object_id,
        name=f"k8s_{object_id}",
        pod_id=pod_id,
        config=ContainerConfig(metadata=ContainerMetadata(name=object_id)),
        image="busybox",
        image_id="i",
        image_name="busybox",
        runtime_handler="runc",
        log_path="",
        created_at=1,
    )


def _pod(object_id: str) -> Sandbox:
    config = PodSandboxConfig(metadata=PodSandboxMetadata(name="p", uid="u", namespace="n"))
    return Sandbox(
        id=object_id, name="k8s_POD_p", config=config, runtime_handler="", created_at=1, config_digest=""
    )


def test_the_rate_is_kept_per_container_for_every_caller(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two readings one second apart with 0.5 s of CPU: every caller sees 0.5 cores until the next pass."""
    clock = iter(range(10))

    def fake_read(targets: list[service._Target]) -> dict[str, CgroupSample | service.PodSample]:
        tick = next(clock)
        result: dict[str, CgroupSample | service.PodSample] = {}
        for target in targets:
            sample = CgroupSample(tick * 10**9, cpu_usage_ns=tick * 500_000_000, pids=2)
            result[target.object_id] = sample if target.kind == "container" else service.PodSample(sample, [])
        return result

    monkeypatch.setattr(service, "read_targets", fake_read)
    containers = {"c1": _container("c1", "p1")}
    pods = {"p1": _pod("p1")}
    bus = EventBus()

    async def scenario() -> None:
        stats = service.StatsService(1.0, lambda: containers, lambda: pods, bus)
        stats.start()
        await stats.sample()
        await stats.sample()
        for _ in range(3):  # callers do not move the samples
            await stats.fresh(["c1"], ["p1"])
            readings = stats.container("c1")
            assert readings is not None
            assert cgroups.nano_cores(*readings) == 500_000_000
        pod = stats.pod("p1")
        assert pod is not None and pod[1].cgroup.pids == 2
        del containers["c1"]
        bus.transition(CONTAINER, "c1", "p1", "exited", REMOVED)
        await asyncio.sleep(0.01)
        assert stats.container("c1") is None
        await stats.close()

    asyncio.run(scenario())


def test_on_demand_sampling_is_shared_by_callers(monkeypatch: pytest.MonkeyPatch) -> None:
    passes: list[int] = []

    def fake_read(targets: list[service._Target]) -> dict[str, CgroupSample | service.PodSample]:
        passes.append(len(targets))
        return {t.object_id: CgroupSample(len(passes)) for t in targets if t.kind == "container"}

    monkeypatch.setattr(service, "read_targets", fake_read)
    containers = {"c1": _container("c1", "p1")}

    async def scenario() -> None:
        stats = service.StatsService(0, lambda: containers, dict, EventBus())
        await asyncio.gather(*(stats.fresh(["c1"], []) for _ in range(5)))
        assert len(passes) == 1  # one pass, not one per caller

    asyncio.run(scenario())
