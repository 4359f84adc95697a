"""The stats service: one sampler keeps the last two readings of every container and pod.

Every ``[crio.stats] stats_collection_period`` seconds one task reads the cgroups of all containers and pods
and the pods' network counters, in a worker thread, and keeps the previous and latest reading per object.
CPU rates (nanocores) are computed between those two readings, so every caller sees the same rate however
often it asks. With a period of 0 the readings are taken on demand, at most once per
:data:`ON_DEMAND_MIN_AGE` seconds (shared by all callers). Readings of a removed container or pod are dropped
when the lifecycle engine publishes its removal on the event bus.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from crio.core.containers.model import Container
from crio.core.events import REMOVED, EventBus, Subscription
from crio.core.sandbox.model import Sandbox
from crio.core.spec.container import cgroups_path
from crio.core.stats import cgroups, netdev
from crio.core.stats.cgroups import CgroupSample

log = logging.getLogger(__name__)

ON_DEMAND_MIN_AGE = 1.0


@dataclass(frozen=True)
class PodSample:
    """One reading of a pod: its cgroups summed (infra and containers) and its interfaces."""

    cgroup: CgroupSample
    interfaces: list[netdev.Interface] | None


@dataclass(frozen=True)
class _Target:
    kind: str  # "container" or "pod"
    object_id: str
    paths: tuple[str, ...]
    netns_path: str = ""
    infra_pid: int = 0


def summed(samples: list[CgroupSample], now: int) -> CgroupSample:
    """The field-wise sum of several cgroups' readings (a field is None when no reading has it)."""
    values: dict[str, Any] = {}
    for f in dataclasses.fields(CgroupSample):
        if f.name in ("timestamp", "io"):
            continue
        present = [getattr(s, f.name) for s in samples if getattr(s, f.name) is not None]
        values[f.name] = sum(present) if present else None
    return CgroupSample(now, **values)


def read_targets(targets: list[_Target]) -> dict[str, CgroupSample | PodSample]:
    """Read every target (run in a worker thread)."""
    hierarchy = cgroups.host_hierarchy()
    result: dict[str, CgroupSample | PodSample] = {}
    read: dict[str, CgroupSample] = {}  # a pod sums its containers' cgroups: each is read once per pass
    for target in targets:
        now = time.time_ns()
        readings = []
        for path in target.paths:
            if path not in read:
                read[path] = cgroups.read_cgroup(path, hierarchy, now)
            readings.append(read[path])
        if target.kind == "container":
            result[target.object_id] = readings[0]
        else:
            interfaces = netdev.read_pod_interfaces(target.netns_path, target.infra_pid)
            result[target.object_id] = PodSample(summed(readings, now), interfaces)
    return result


class StatsService:
    """Keeps the last two readings per container and pod, sampled on the daemon's period."""

    def __init__(
        self,
        period: float,
        containers: Callable[[], Mapping[str, Container]],
        pods: Callable[[], Mapping[str, Sandbox]],
        bus: EventBus,
    ) -> None:
        self.period = period
        self._tables = containers, pods  # the lifecycle engines' tables (read, never changed)
        self._bus = bus
        self.container_samples: dict[str, tuple[CgroupSample | None, CgroupSample]] = {}
        self.pod_samples: dict[str, tuple[PodSample | None, PodSample]] = {}
        self._gone: set[str] = set()  # removed while a sampling pass was reading
        self._lock = asyncio.Lock()
        self._last_pass = 0.0
        self.last_pass_seconds = 0.0  # how long the last pass took (for logs and benchmarks)
        self._tasks: list[asyncio.Task[None]] = []
        self._subscription: Subscription | None = None

    @property
    def _containers(self) -> Mapping[str, Container]:
        return self._tables[0]()

    @property
    def _pods(self) -> Mapping[str, Sandbox]:
        return self._tables[1]()

    def container_path(self, container: Container) -> str:
        """The cgroup (cgroupfs form) of a container."""
        pod = self._pods.get(container.pod_id)
        return cgroups_path(pod.cgroup_parent if pod is not None else "", container.id)

    def _targets(
        self, container_ids: list[str] | None = None, pod_ids: list[str] | None = None
    ) -> list[_Target]:
        targets = []
        chosen = (
            self._containers.values()
            if container_ids is None
            else [self._containers[i] for i in container_ids]
        )
        for container in chosen:
            targets.append(_Target("container", container.id, (self.container_path(container),)))
        by_pod: dict[str, list[str]] = {}
        for container in self._containers.values():
            by_pod.setdefault(container.pod_id, []).append(self.container_path(container))
        pods = self._pods.values() if pod_ids is None else [self._pods[i] for i in pod_ids]
        for pod in pods:
            paths = (cgroups_path(pod.cgroup_parent, pod.id), *by_pod.get(pod.id, []))
            targets.append(_Target("pod", pod.id, paths, pod.netns_path, pod.infra_pid))
        return targets

    async def sample(self, container_ids: list[str] | None = None, pod_ids: list[str] | None = None) -> None:
        """Take one reading of the given objects (all when both are None) and keep it."""
        if container_ids is not None and pod_ids is None:
            pod_ids = []
        if pod_ids is not None and container_ids is None:
            container_ids = []
        targets = self._targets(container_ids, pod_ids)
        self._gone.clear()
        started = time.monotonic()
        readings = await asyncio.to_thread(read_targets, targets)
        if container_ids is None and pod_ids is None:
            self.last_pass_seconds = time.monotonic() - started
            self._last_pass = time.monotonic()
        for object_id, reading in readings.items():
            if object_id in self._gone:
                continue
            if isinstance(reading, PodSample):
                old_pod = self.pod_samples.get(object_id)
                self.pod_samples[object_id] = (old_pod[1] if old_pod else None, reading)
            else:
                old = self.container_samples.get(object_id)
                self.container_samples[object_id] = (old[1] if old else None, reading)

    async def fresh(self, container_ids: list[str], pod_ids: list[str]) -> None:
        """Make sure the objects asked about have a reading: on demand (period 0) a pass at most once per
        :data:`ON_DEMAND_MIN_AGE`; otherwise only objects the sampler has not reached yet are read now."""
        async with self._lock:
            if self.period <= 0 and time.monotonic() - self._last_pass >= ON_DEMAND_MIN_AGE:
                await self.sample()
                return
            missing_c = [
                i for i in container_ids if i not in self.container_samples and i in self._containers
            ]
            missing_p = [i for i in pod_ids if i not in self.pod_samples and i in self._pods]
            if missing_c or missing_p:
                await self.sample(missing_c, missing_p)

    def container(self, container_id: str) -> tuple[CgroupSample | None, CgroupSample] | None:
        """The (previous, latest) readings of a container, or None."""
        return self.container_samples.get(container_id)

    def pod(self, pod_id: str) -> tuple[PodSample | None, PodSample] | None:
        """The (previous, latest) readings of a pod, or None."""
        return self.pod_samples.get(pod_id)

    # ------------------------------------------------------------------------------------ background
    def start(self) -> None:
        """Start following removals and, with a period, the sampler."""
        self._subscription = self._bus.subscribe()
        loop = asyncio.get_running_loop()
        self._tasks.append(loop.create_task(self._follow(self._subscription)))
        if self.period > 0:
            self._tasks.append(loop.create_task(self._sampler()))

    async def close(self) -> None:
        """Stop the sampler and the event subscription."""
        if self._subscription is not None:
            self._subscription.close()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()

    def forget(self, object_id: str) -> None:
        """Drop the readings of a removed container or pod."""
        self.container_samples.pop(object_id, None)
        self.pod_samples.pop(object_id, None)
        self._gone.add(object_id)

    async def _follow(self, subscription: Subscription) -> None:
        async for event in subscription:
            if event.new_state == REMOVED:
                self.forget(event.object_id)
        if subscription.dropped:  # fell behind: resubscribe and prune what no table holds any more
            log.warning("stats: event subscription dropped; resubscribing")
            for object_id in list(self.container_samples):
                if object_id not in self._containers:
                    self.forget(object_id)
            for object_id in list(self.pod_samples):
                if object_id not in self._pods:
                    self.forget(object_id)
            self._subscription = self._bus.subscribe()
            self._tasks.append(asyncio.get_running_loop().create_task(self._follow(self._subscription)))

    async def _sampler(self) -> None:
        while True:
            try:
                async with self._lock:
                    await self.sample()
                log.debug(
                    "stats: sampled %d containers, %d pods in %.3fs",
                    len(self.container_samples),
                    len(self.pod_samples),
                    self.last_pass_seconds,
                )
            except Exception:  # a bad reading must not end the sampler
                log.exception("stats: sampling pass failed")
            await asyncio.sleep(self.period)
