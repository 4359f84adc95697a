"""Cost of one stats sampling pass (crio.core.stats.service.read_targets) with N containers and pods.

Makes N scratch cgroups (cgroupfs, v1 controllers or v2, whichever this host uses) under
``/crio-bench-<pid>``, each holding one ``sleep``, and times the pass the sampler runs every period in its
worker thread: N container readings plus N/2 pod readings (two cgroups summed and ``/proc/<pid>/net/dev``
each). Prints wall and CPU time per pass. Needs root. Run:
``PYTHONPATH=. python -m bench.stats_sampler [--counts 10 50 110] [--passes 20]``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import time
from pathlib import Path

from bench.common import median, percentile, print_table
from crio.core.stats import cgroups, service

CONTROLLERS = ("cpu", "cpuacct", "memory", "pids")


def _dirs(relative: str) -> list[Path]:
    found = cgroups.host_hierarchy()
    if found.is_v1:
        return list({found.v1[c] / relative for c in CONTROLLERS if c in found.v1})
    assert found.unified is not None, "no cgroup hierarchy"
    return [found.unified / relative]


def make_cgroups(parent: str, count: int) -> list[tuple[str, subprocess.Popen[bytes]]]:
    """``count`` cgroups under ``parent``, each holding one sleeping process."""
    made = []
    for index in range(count):
        relative = f"{parent}/crio-{index:04d}"
        sleeper = subprocess.Popen(["sleep", "600"])
        for directory in _dirs(relative.lstrip("/")):
            directory.mkdir(parents=True, exist_ok=True)
            (directory / "cgroup.procs").write_text(str(sleeper.pid))
        made.append((relative, sleeper))
    return made


def remove_cgroups(parent: str, made: list[tuple[str, subprocess.Popen[bytes]]]) -> None:
    """Stop the sleepers and remove the cgroups (children first)."""
    for _, sleeper in made:
        sleeper.kill()
        sleeper.wait()
    for relative, _ in made:
        for directory in _dirs(relative.lstrip("/")):
            with contextlib.suppress(OSError):
                directory.rmdir()
    for directory in _dirs(parent.lstrip("/")):
        with contextlib.suppress(OSError):
            directory.rmdir()


def measure(count: int, passes: int) -> tuple[float, float, float]:
    """Median and p95 wall ms, median CPU ms of one pass over ``count`` containers and ``count // 2`` pods."""
    parent = f"/crio-bench-{os.getpid()}"
    made = make_cgroups(parent, count)
    try:
        targets = [service._Target("container", path, (path,)) for path, _ in made]
        for index in range(0, count - 1, 2):
            (infra, sleeper), (member, _) = made[index], made[index + 1]
            netns = f"/proc/{sleeper.pid}/ns/net"
            targets.append(service._Target("pod", f"pod-{index}", (infra, member), netns, sleeper.pid))
        walls, cpus = [], []
        for _ in range(passes):
            wall, cpu = time.perf_counter(), time.thread_time()
            service.read_targets(targets)
            walls.append((time.perf_counter() - wall) * 1000)
            cpus.append((time.thread_time() - cpu) * 1000)
        return median(walls), percentile(walls, 95), median(cpus)
    finally:
        remove_cgroups(parent, made)


def main() -> None:
    """Print the table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--counts", type=int, nargs="+", default=[10, 50, 110])
    parser.add_argument("--passes", type=int, default=20)
    args = parser.parse_args()
    version = "v1" if cgroups.host_hierarchy().is_v1 else "v2"
    rows = []
    for count in args.counts:
        wall, p95, cpu = measure(count, args.passes)
        rows.append(
            (count, count // 2, f"{wall:.1f}", f"{p95:.1f}", f"{cpu:.1f}", f"{wall / count * 1000:.0f}")
        )
    print_table(
        f"stats sampling pass, cgroup {version}, {args.passes} passes each",
        ("containers", "pods", "wall ms (median)", "wall ms (p95)", "cpu ms (median)", "µs per container"),
        rows,
    )


if __name__ == "__main__":
    main()
