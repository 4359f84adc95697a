"""Stats RPCs on the wire: container and pod stats, metric descriptors and pod metrics (cadvisor names).

Readings come from the stats service (:mod:`crio.core.stats.service`), which samples on the daemon's period;
only the writable layers are measured per call.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from grpc import aio

from crio.core.api import api_pb2 as pb
from crio.core.containers.manager import ContainerManager
from crio.core.containers.model import Container
from crio.core.sandbox.manager import SandboxManager
from crio.core.sandbox.model import Sandbox
from crio.core.spec.container import cgroups_path
from crio.core.stats import metrics
from crio.core.stats.cgroups import CgroupSample, block_device_name, nano_cores
from crio.core.stats.service import PodSample, StatsService

_TYPES = {metrics.COUNTER: pb.COUNTER, metrics.GAUGE: pb.GAUGE}
DEFAULT_INTERFACE = "eth0"


def _u64(value: int | None) -> pb.UInt64Value | None:
    return None if value is None else pb.UInt64Value(value=max(int(value), 0))


def _cpu(previous: CgroupSample | None, latest: CgroupSample) -> pb.CpuUsage:
    return pb.CpuUsage(
        timestamp=latest.timestamp,
        usage_core_nano_seconds=_u64(latest.cpu_usage_ns),
        usage_nano_cores=_u64(nano_cores(previous, latest)),
    )


def _memory(latest: CgroupSample) -> pb.MemoryUsage:
    return pb.MemoryUsage(
        timestamp=latest.timestamp,
        working_set_bytes=_u64(latest.memory_working_set),
        available_bytes=_u64(latest.memory_available),
        usage_bytes=_u64(latest.memory_usage),
        rss_bytes=_u64(latest.memory_rss),
        page_faults=_u64(latest.page_faults),
        major_page_faults=_u64(latest.major_page_faults),
    )


def _network(sample: PodSample) -> pb.NetworkUsage | None:
    if sample.interfaces is None:
        return None
    interfaces = [
        pb.NetworkInterfaceUsage(
            name=i.name,
            rx_bytes=_u64(i.rx_bytes),
            rx_errors=_u64(i.rx_errors),
            tx_bytes=_u64(i.tx_bytes),
            tx_errors=_u64(i.tx_errors),
        )
        for i in sample.interfaces
    ]
    usage = pb.NetworkUsage(timestamp=sample.cgroup.timestamp, interfaces=interfaces)
    default = next(
        (i for i in interfaces if i.name == DEFAULT_INTERFACE), interfaces[0] if interfaces else None
    )
    if default is not None:
        usage.default_interface.CopyFrom(default)
    return usage


def _filesystem(layer_dir: str, used: int) -> metrics.Filesystem | None:
    """The writable layer's filesystem, named by its block device as cadvisor names it (``/dev/sda1``)."""
    try:
        found = os.statvfs(layer_dir)
        dev = os.stat(layer_dir).st_dev
    except OSError:
        return None
    device = block_device_name(os.major(dev), os.minor(dev))
    return metrics.Filesystem(device, used, found.f_blocks * found.f_frsize, found.f_ffree, found.f_files)


class StatsRPCs:
    """ContainerStats, ListContainerStats, PodSandboxStats, ListPodSandboxStats, ListMetricDescriptors,
    ListPodSandboxMetrics."""

    def __init__(self, containers: ContainerManager, pods: SandboxManager, stats: StatsService) -> None:
        self.containers = containers
        self.pods = pods
        self.stats = stats

    # ----------------------------------------------------------------------------------------- containers
    async def _container_stats(self, container: Container) -> pb.ContainerStats:
        mountpoint, used, inodes = await self.containers.writable_layer(container)
        meta = container.config.metadata
        result = pb.ContainerStats(
            attributes=pb.ContainerAttributes(
                id=container.id,
                metadata=pb.ContainerMetadata(name=meta.name, attempt=meta.attempt),
                labels=container.config.labels,
                annotations=container.config.annotations,
            ),
        )
        readings = self.stats.container(container.id)
        timestamp = readings[1].timestamp if readings else 0
        result.writable_layer.CopyFrom(
            pb.FilesystemUsage(
                timestamp=timestamp,
                fs_id=pb.FilesystemIdentifier(mountpoint=mountpoint),
                used_bytes=pb.UInt64Value(value=used),
                inodes_used=pb.UInt64Value(value=inodes),
            )
        )
        if readings is not None:
            previous, latest = readings
            result.cpu.CopyFrom(_cpu(previous, latest))
            result.memory.CopyFrom(_memory(latest))
            result.swap.CopyFrom(
                pb.SwapUsage(
                    timestamp=latest.timestamp,
                    swap_usage_bytes=_u64(latest.swap_usage),
                    swap_available_bytes=_u64(latest.swap_available),
                )
            )
        return result

    async def _many_container_stats(self, found: list[Container]) -> list[pb.ContainerStats]:
        await self.stats.fresh([c.id for c in found], [])
        return list(await asyncio.gather(*(self._container_stats(c) for c in found)))

    async def ContainerStats(
        self, request: pb.ContainerStatsRequest, context: aio.ServicerContext[Any, Any]
    ) -> pb.ContainerStatsResponse:
        """Resource usage of one container."""
        container = self.containers.get(request.container_id)
        (stats,) = await self._many_container_stats([container])
        return pb.ContainerStatsResponse(stats=stats)

    async def ListContainerStats(
        self, request: pb.ListContainerStatsRequest, context: aio.ServicerContext[Any, Any]
    ) -> pb.ListContainerStatsResponse:
        """Resource usage of the containers matching the filter (ID prefix, pod, label selector)."""
        flt = request.filter if request.HasField("filter") else pb.ContainerStatsFilter()
        found = self.containers.list(flt.id, None, flt.pod_sandbox_id, dict(flt.label_selector))
        return pb.ListContainerStatsResponse(stats=await self._many_container_stats(found))

    # ----------------------------------------------------------------------------------------------- pods
    async def _pod_stats(self, pods: list[Sandbox]) -> list[pb.PodSandboxStats]:
        members = {pod.id: self.containers.of_pod(pod.id) for pod in pods}
        await self.stats.fresh([c.id for found in members.values() for c in found], [p.id for p in pods])
        result = []
        for pod in pods:
            meta = pod.config.metadata
            stats = pb.PodSandboxStats(
                attributes=pb.PodSandboxAttributes(
                    id=pod.id,
                    metadata=pb.PodSandboxMetadata(
                        name=meta.name, uid=meta.uid, namespace=meta.namespace, attempt=meta.attempt
                    ),
                    labels=pod.config.labels,
                    annotations=pod.config.annotations,
                )
            )
            readings = self.stats.pod(pod.id)
            if readings is not None:
                previous, latest = readings
                linux = stats.linux
                linux.cpu.CopyFrom(_cpu(previous.cgroup if previous else None, latest.cgroup))
                linux.memory.CopyFrom(_memory(latest.cgroup))
                network = _network(latest)
                if network is not None:
                    linux.network.CopyFrom(network)
                linux.process.CopyFrom(
                    pb.ProcessUsage(timestamp=latest.cgroup.timestamp, process_count=_u64(latest.cgroup.pids))
                )
            containers = await asyncio.gather(*(self._container_stats(c) for c in members[pod.id]))
            stats.linux.containers.extend(containers)
            result.append(stats)
        return result

    async def PodSandboxStats(
        self, request: pb.PodSandboxStatsRequest, context: aio.ServicerContext[Any, Any]
    ) -> pb.PodSandboxStatsResponse:
        """Resource usage of one pod: cpu, memory, network, processes and its containers' stats."""
        (stats,) = await self._pod_stats([self.pods.get(request.pod_sandbox_id)])
        return pb.PodSandboxStatsResponse(stats=stats)

    async def ListPodSandboxStats(
        self, request: pb.ListPodSandboxStatsRequest, context: aio.ServicerContext[Any, Any]
    ) -> pb.ListPodSandboxStatsResponse:
        """Resource usage of the pods matching the filter (ID prefix, label selector)."""
        flt = request.filter if request.HasField("filter") else pb.PodSandboxStatsFilter()
        found = self.pods.list(flt.id, None, dict(flt.label_selector))
        return pb.ListPodSandboxStatsResponse(stats=await self._pod_stats(found))

    # -------------------------------------------------------------------------------------------- metrics
    async def ListMetricDescriptors(
        self, request: pb.ListMetricDescriptorsRequest, context: aio.ServicerContext[Any, Any]
    ) -> pb.ListMetricDescriptorsResponse:
        """The metric families ListPodSandboxMetrics reports (cadvisor's names and labels)."""
        return pb.ListMetricDescriptorsResponse(
            descriptors=[
                pb.MetricDescriptor(name=d.name, help=d.help, label_keys=d.label_keys)
                for d in metrics.DESCRIPTORS
            ]
        )

    async def ListPodSandboxMetrics(
        self, request: pb.ListPodSandboxMetricsRequest, context: aio.ServicerContext[Any, Any]
    ) -> pb.ListPodSandboxMetricsResponse:
        """Metrics of every pod and its containers, from the latest readings."""
        pods = self.pods.list()
        members = {pod.id: self.containers.of_pod(pod.id) for pod in pods}
        await self.stats.fresh([c.id for found in members.values() for c in found], [p.id for p in pods])
        result = []
        for pod in pods:
            namespace, pod_name = pod.config.metadata.namespace, pod.config.metadata.name
            entry = pb.PodSandboxMetrics(pod_sandbox_id=pod.id)
            readings = self.stats.pod(pod.id)
            if readings is not None and readings[1].interfaces:
                base = ("POD", cgroups_path(pod.cgroup_parent, pod.id), "", pod.id, namespace, pod_name)
                entry.metrics.extend(
                    _metric(v, base, readings[1].cgroup.timestamp)
                    for v in metrics.network_values(readings[1].interfaces)
                )
            for container in members[pod.id]:
                sample = self.stats.container(container.id)
                if sample is None:
                    continue
                latest = sample[1]
                mountpoint, used, _ = await self.containers.writable_layer(container)
                filesystem = await asyncio.to_thread(_filesystem, mountpoint, used)
                base = (
                    container.config.metadata.name,
                    self.stats.container_path(container),
                    container.image_name or container.image,
                    container.id,
                    namespace,
                    pod_name,
                )
                values = metrics.container_values(latest, container.started_at, filesystem)
                entry.container_metrics.append(
                    pb.ContainerMetrics(
                        container_id=container.id,
                        metrics=[_metric(v, base, latest.timestamp) for v in values],
                    )
                )
            result.append(entry)
        return pb.ListPodSandboxMetricsResponse(pod_metrics=result)


def _metric(value: metrics.Value, base: tuple[str, ...], timestamp: int) -> pb.Metric:
    """One series on the wire; values are whole numbers (the CRI carries a UInt64Value)."""
    return pb.Metric(
        name=value.descriptor.name,
        timestamp=timestamp,
        metric_type=_TYPES[value.descriptor.type],
        label_values=[*base, *value.extra_values],
        value=pb.UInt64Value(value=max(int(value.value), 0)),
    )
