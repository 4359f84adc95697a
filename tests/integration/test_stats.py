"""Stats on a real daemon: CPU rate shared by callers, pod cpu/memory/network/processes, cadvisor metrics."""

from __future__ import annotations

import ipaddress
import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from crio.core.api import api_pb2 as pb

from .conftest import CrioFactory, CrioProcess, bridge_conflist
from .test_containers import BUSYBOX, new_pod

PERIOD = 1  # [crio.stats] stats_collection_period for these tests


@pytest.fixture
def daemon(crio_factory: CrioFactory, local_registry: str) -> CrioProcess:
    d = crio_factory()
    (d.cni_dir / "10-crio-test.conflist").write_text(json.dumps(bridge_conflist()))
    (d.config_dir / "50-stats.conf").write_text(f"[crio.stats]\nstats_collection_period = {PERIOD}\n")
    d.start()
    d.images().PullImage(pb.PullImageRequest(image=pb.ImageSpec(image=BUSYBOX)), timeout=300)
    return d


@pytest.fixture
def pods(daemon: CrioProcess) -> Iterator[list[str]]:
    """Pod IDs to remove at the end, whatever the test's outcome (containers outlive a stopped daemon)."""
    created: list[str] = []
    yield created
    for pod_id in created:
        daemon.runtime().RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=pod_id), timeout=60)


def pod_in(daemon: CrioProcess, pods: list[str]) -> tuple[str, pb.PodSandboxConfig]:
    pod = new_pod(daemon)
    pods.append(pod[0])
    return pod


def run_container(
    daemon: CrioProcess,
    pod: tuple[str, pb.PodSandboxConfig],
    name: str,
    command: list[str],
    net_raw: bool = False,
) -> str:
    config = pb.ContainerConfig(
        metadata=pb.ContainerMetadata(name=name),
        image=pb.ImageSpec(image=BUSYBOX),
        command=command,
        log_path=f"{name}.log",
    )
    if net_raw:
        config.linux.security_context.capabilities.add_capabilities.append("NET_RAW")
    request = pb.CreateContainerRequest(pod_sandbox_id=pod[0], config=config, sandbox_config=pod[1])
    container_id = str(daemon.runtime().CreateContainer(request, timeout=120).container_id)
    daemon.runtime().StartContainer(pb.StartContainerRequest(container_id=container_id), timeout=60)
    return container_id


def pod_stats(daemon: CrioProcess, pod_id: str) -> pb.PodSandboxStats:
    stats: pb.PodSandboxStats = (
        daemon.runtime().PodSandboxStats(pb.PodSandboxStatsRequest(pod_sandbox_id=pod_id), timeout=30).stats
    )
    return stats


def test_a_busy_container_shows_its_cpu_rate_to_every_caller(daemon: CrioProcess, pods: list[str]) -> None:
    pod = pod_in(daemon, pods)
    busy = run_container(daemon, pod, "spin", ["sh", "-c", "while :; do :; done"])
    time.sleep(2.5 * PERIOD)  # at least two sampling passes

    def ask(_: int) -> pb.ContainerStats:
        stats: pb.ContainerStats = (
            daemon.runtime().ContainerStats(pb.ContainerStatsRequest(container_id=busy), timeout=30).stats
        )
        return stats

    first = ask(0)
    time.sleep(0.2)
    second = ask(1)
    with ThreadPoolExecutor(4) as pool:  # concurrent callers too
        others = list(pool.map(ask, range(4)))
    for stats in (first, second, *others):
        assert stats.cpu.usage_nano_cores.value > 100_000_000, stats.cpu  # a spinning shell: > 0.1 core
        assert stats.cpu.usage_core_nano_seconds.value > 0
        assert stats.memory.working_set_bytes.value > 0
        assert stats.memory.HasField("page_faults") and stats.swap.HasField("swap_usage_bytes")
        assert stats.writable_layer.fs_id.mountpoint
    listed = daemon.runtime().ListContainerStats(pb.ListContainerStatsRequest(), timeout=30).stats
    assert [s.cpu.usage_nano_cores.value > 100_000_000 for s in listed if s.attributes.id == busy] == [True]


def test_pod_stats_have_cpu_memory_processes_network_and_containers(
    daemon: CrioProcess, pods: list[str]
) -> None:
    pod = pod_in(daemon, pods)
    pinger = run_container(daemon, pod, "pinger", ["sh", "-c", "sleep 300 & sleep 300 & wait"], net_raw=True)
    time.sleep(2 * PERIOD)
    before = pod_stats(daemon, pod[0]).linux
    assert before.network.default_interface.name == "eth0"
    plugins: Any = bridge_conflist()["plugins"]
    gateway = str(ipaddress.ip_network(plugins[0]["ipam"]["ranges"][0][0]["subnet"])[1])  # the bridge
    result = daemon.runtime().ExecSync(
        pb.ExecSyncRequest(container_id=pinger, cmd=["ping", "-c", "3", "-s", "1000", gateway], timeout=30),
        timeout=60,
    )
    assert result.exit_code == 0, result.stderr
    time.sleep(1.5 * PERIOD)
    after = pod_stats(daemon, pod[0])
    linux = after.linux
    assert after.attributes.id == pod[0]
    assert linux.cpu.usage_core_nano_seconds.value > 0
    assert linux.memory.working_set_bytes.value > 0
    assert linux.process.process_count.value >= 4  # pause, sh and two sleeps
    eth0 = linux.network.default_interface
    assert eth0.tx_bytes.value >= before.network.default_interface.tx_bytes.value + 3000
    assert eth0.rx_bytes.value >= before.network.default_interface.rx_bytes.value + 3000
    assert [i.name for i in linux.network.interfaces] == ["eth0"]
    assert [c.attributes.id for c in linux.containers] == [pinger]
    assert linux.containers[0].writable_layer.used_bytes.value > 0
    listed = daemon.runtime().ListPodSandboxStats(pb.ListPodSandboxStatsRequest(), timeout=30).stats
    assert pod[0] in [s.attributes.id for s in listed]
    daemon.runtime().RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=pod[0]), timeout=60)
    listed = daemon.runtime().ListPodSandboxStats(pb.ListPodSandboxStatsRequest(), timeout=30).stats
    assert pod[0] not in [s.attributes.id for s in listed]


def test_metric_descriptors_and_pod_metrics_use_cadvisor_names_and_labels(
    daemon: CrioProcess, pods: list[str]
) -> None:
    descriptors = {
        d.name: list(d.label_keys)
        for d in daemon.runtime()
        .ListMetricDescriptors(pb.ListMetricDescriptorsRequest(), timeout=30)
        .descriptors
    }
    assert descriptors["container_cpu_usage_seconds_total"] == [
        "container",
        "id",
        "image",
        "name",
        "namespace",
        "pod",
        "cpu",
    ]
    assert descriptors["container_network_receive_bytes_total"][-1] == "interface"
    assert "container_memory_working_set_bytes" in descriptors
    pod = pod_in(daemon, pods)
    busy = run_container(daemon, pod, "spin", ["sh", "-c", "while :; do :; done"])
    time.sleep(2 * PERIOD)
    response = daemon.runtime().ListPodSandboxMetrics(pb.ListPodSandboxMetricsRequest(), timeout=30)
    (entry,) = [m for m in response.pod_metrics if m.pod_sandbox_id == pod[0]]
    network = {m.name: m for m in entry.metrics}
    rx = network["container_network_receive_bytes_total"]
    assert list(rx.label_values)[-1] == "eth0" and rx.value.value > 0
    assert rx.metric_type == pb.COUNTER
    (container,) = entry.container_metrics
    assert container.container_id == busy
    series = {m.name: m for m in container.metrics}
    for metric in series.values():
        assert len(metric.label_values) == len(descriptors[metric.name]), metric.name
    cpu = series["container_cpu_usage_seconds_total"]
    assert list(cpu.label_values) == [
        "spin",
        f"/crio/crio-{busy}",
        BUSYBOX,
        busy,
        "crio-test",
        pod[1].metadata.name,
        "total",
    ]
    assert series["container_memory_working_set_bytes"].value.value > 0
    assert series["container_memory_working_set_bytes"].metric_type == pb.GAUGE
    assert series["container_processes"].value.value >= 1
    assert series["container_fs_usage_bytes"].value.value >= 0
