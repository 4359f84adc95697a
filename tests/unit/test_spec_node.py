"""Detecting the node's cgroup features."""

from __future__ import annotations

from pathlib import Path

import pytest

from crio.core.spec.node import detect_node_features
from crio.core.spec.resources import NodeFeatures


def write(path: Path, text: str = "") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


# (files of a fake /sys/fs/cgroup, /proc/self/cgroup, expected features)
NODES: list[tuple[dict[str, str], str, NodeFeatures]] = [
    (
        {"cgroup.controllers": "cpu memory pids hugetlb", "crio/memory.swap.max": "max"},
        "0::/crio\n",
        NodeFeatures(cgroup_v2=True, memory_swap=True, hugetlb=True, pids=True),
    ),
    (
        {"cgroup.controllers": "cpu memory"},
        "0::/\n",
        NodeFeatures(True, memory_swap=False, hugetlb=False, pids=False),
    ),
    (
        {"memory/memory.memsw.limit_in_bytes": "", "pids/tasks": "", "hugetlb/tasks": ""},
        "1:pids:/\n",
        NodeFeatures(cgroup_v2=False, memory_swap=True, hugetlb=True, pids=True),
    ),
    (
        {"memory/memory.limit_in_bytes": ""},
        "",
        NodeFeatures(False, memory_swap=False, hugetlb=False, pids=False),
    ),
]


@pytest.mark.parametrize(("files", "proc_cgroup", "expected"), NODES)
def test_detect_node_features(
    tmp_path: Path, files: dict[str, str], proc_cgroup: str, expected: NodeFeatures
) -> None:
    root = tmp_path / "cgroup"
    root.mkdir()
    for name, text in files.items():
        write(root / name, text)
    write(tmp_path / "self-cgroup", proc_cgroup)
    assert detect_node_features(root, tmp_path / "self-cgroup") == expected
