"""The container's cgroup limits (OCI ``linux.resources`` without devices) from CRI
``LinuxContainerResources``, limited to what the node's cgroups can enforce."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from crio.core.errors import InvalidArgument
from crio.core.spec.cri import int64


@dataclass(frozen=True)
class NodeFeatures:
    """What the node's cgroups offer (see :func:`crio.core.spec.node.detect_node_features`)."""

    cgroup_v2: bool = True
    memory_swap: bool = True  # memory.memsw.* (v1) or memory.swap.max (v2)
    hugetlb: bool = True
    pids: bool = True


def _cpu(resources: Mapping[str, Any]) -> dict[str, Any]:
    cpu: dict[str, Any] = {}
    for key, oci in (("cpu_shares", "shares"), ("cpu_quota", "quota"), ("cpu_period", "period")):
        value = int64(resources, key)
        if value:
            cpu[oci] = value
    for key, oci in (("cpuset_cpus", "cpus"), ("cpuset_mems", "mems")):
        if resources.get(key):
            cpu[oci] = str(resources[key])
    return cpu


def _memory(resources: Mapping[str, Any], node: NodeFeatures) -> dict[str, Any]:
    """limit, and swap (memory plus swap, as OCI counts it): the CRI value, else the limit itself so the
    container gets no swap. A swap limit below the memory limit is refused."""
    limit = int64(resources, "memory_limit_in_bytes")
    if limit <= 0:
        return {}
    memory: dict[str, Any] = {"limit": limit}
    swap = int64(resources, "memory_swap_limit_in_bytes")
    if 0 < swap < limit:
        raise InvalidArgument(f"memory_swap_limit_in_bytes {swap} is below memory_limit_in_bytes {limit}")
    if node.memory_swap:
        memory["swap"] = swap or limit
    return memory


def linux_resources(resources: Mapping[str, Any], pids_limit: int, node: NodeFeatures) -> dict[str, Any]:
    """OCI ``linux.resources`` (cpu, memory, pids, hugepageLimits, unified) without the device rules.

    Hugepage limits need the hugetlb controller, ``unified`` needs cgroup v2 and the pids limit (> 0) the
    pids controller: each is left out when the node lacks it, as CRI-O does.
    """
    result: dict[str, Any] = {}
    cpu = _cpu(resources)
    if cpu:
        result["cpu"] = cpu
    memory = _memory(resources, node)
    if memory:
        result["memory"] = memory
    if pids_limit > 0 and node.pids:
        result["pids"] = {"limit": pids_limit}
    hugepages = [
        {"pageSize": str(h.get("page_size", "")), "limit": int64(h, "limit")}
        for h in resources.get("hugepage_limits") or ()
    ]
    if hugepages and node.hugetlb:
        result["hugepageLimits"] = hugepages
    unified = resources.get("unified") or {}
    if unified and node.cgroup_v2:
        result["unified"] = {str(k): str(v) for k, v in unified.items()}
    return result


def oom_score_adj(config: Mapping[str, Any], daemon_oom_score_adj: int) -> int:
    """``process.oomScoreAdj``: the CRI resources' value (0 when the resources omit it), or the daemon's own
    when the config has no resources at all. The runtime handler clamps it to what the daemon may set."""
    linux = config.get("linux") or {}
    if "resources" not in linux:
        return daemon_oom_score_adj
    return int64(linux["resources"], "oom_score_adj")
