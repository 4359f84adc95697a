"""Detecting the node's cgroup features (I/O) for :class:`crio.core.spec.resources.NodeFeatures`."""

from __future__ import annotations

from pathlib import Path

from crio.core.spec.resources import NodeFeatures

CGROUP_ROOT = Path("/sys/fs/cgroup")


def _own_v2_cgroup(proc_cgroup: str) -> str:
    for line in proc_cgroup.splitlines():
        if line.startswith("0::"):
            return line[3:].strip() or "/"
    return "/"


def detect_node_features(
    root: Path = CGROUP_ROOT, proc_cgroup: Path = Path("/proc/self/cgroup")
) -> NodeFeatures:
    """Which cgroup features the node has: v2 (unified) or v1, swap accounting, hugetlb, pids."""
    controllers_file = root / "cgroup.controllers"
    if controllers_file.exists():
        controllers = set(controllers_file.read_text().split())
        own = root / _own_v2_cgroup(proc_cgroup.read_text()).lstrip("/")
        swap = (own / "memory.swap.max").exists() or any(root.glob("*/memory.swap.max"))
        return NodeFeatures(
            cgroup_v2=True, memory_swap=swap, hugetlb="hugetlb" in controllers, pids="pids" in controllers
        )
    return NodeFeatures(
        cgroup_v2=False,
        memory_swap=(root / "memory" / "memory.memsw.limit_in_bytes").exists(),
        hugetlb=(root / "hugetlb").is_dir(),
        pids=(root / "pids").is_dir(),
    )
