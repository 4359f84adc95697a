"""The container's cgroup limits (OCI ``linux.resources`` without devices) from CRI
``LinuxContainerResources``, limited to what the node's cgroups can enforce."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from crio.core.crirecords import ContainerConfig, LinuxContainerResources
from crio.core.errors import InvalidArgument


@dataclass(frozen=True)
class NodeFeatures:
    """What the node's cgroups offer (see :func:`crio.core.spec.node.detect_node_features`)."""

    cgroup_v2: bool = True
    memory_swap: bool = True  # memory.memsw.* (v1) or memory.swap.max (v2)
    hugetlb: bool = True
    pids: bool = True


def _cpu(resources: LinuxContainerResources) -> dict[str, Any]:
    cpu: dict[str, Any] = {}
    for value, oci in (
        (resources.cpu_shares, "shares"),
        (resources.cpu_quota, "quota"),
        (resources.cpu_period, "period"),
    ):
        if value:
            cpu[oci] = value
    for text, oci in ((resources.cpuset_cpus, "cpus"), (resources.cpuset_mems, "mems")):
        if text:
            cpu[oci] = text
    return cpu


def _memory(resources: LinuxContainerResources, node: NodeFeatures) -> dict[str, Any]:
    """limit, and swap (memory plus swap, as OCI counts it): the CRI value, else the limit itself so the
    container gets no swap. A swap limit below the memory limit is refused."""
    limit = resources.memory_limit_in_bytes
    if limit <= 0:
        return {}
    memory: dict[str, Any] = {"limit": limit}
    swap = resources.memory_swap_limit_in_bytes
    if 0 < swap < limit:
        raise InvalidArgument(f"memory_swap_limit_in_bytes {swap} is below memory_limit_in_bytes {limit}")
    if node.memory_swap:
        memory["swap"] = swap or limit
    return memory


def linux_resources(
    resources: LinuxContainerResources | None, pids_limit: int, node: NodeFeatures
) -> dict[str, Any]:
    """OCI ``linux.resources`` (cpu, memory, pids, hugepageLimits, unified) without the device rules
    (``resources`` None: the request sets no limits).

    Hugepage limits need the hugetlb controller, ``unified`` needs cgroup v2 and the pids limit (> 0) the
    pids controller: each is left out when the node lacks it, as CRI-O does.
    """
    if resources is None:
        resources = LinuxContainerResources()
    result: dict[str, Any] = {}
    cpu = _cpu(resources)
    if cpu:
        result["cpu"] = cpu
    memory = _memory(resources, node)
    if memory:
        result["memory"] = memory
    if pids_limit > 0 and node.pids:
        result["pids"] = {"limit": pids_limit}
    hugepages = [{"pageSize": h.page_size, "limit": h.limit} for h in resources.hugepage_limits]
    if hugepages and node.hugetlb:
        result["hugepageLimits"] = hugepages
    if resources.unified and node.cgroup_v2:
        result["unified"] = dict(resources.unified)
    return result


def oom_score_adj(config: ContainerConfig, daemon_oom_score_adj: int) -> int:
    """``process.oomScoreAdj``: the CRI resources' value (0 when the resources omit it), or the daemon's own
    when the config has no resources at all. The runtime handler clamps it to what the daemon may set."""
    resources = config.resources
    return daemon_oom_score_adj if resources is None else resources.oom_score_adj
