"""Runtime memory with 0, 50 and 110 running pods (one busybox ``sleep`` container each): crio = daemon +
every conmon, containerd = daemon + every containerd-shim-runc-v2; RSS and PSS sums from smaps_rollup.

Both runtimes are started together (bench.side_by_side: same runc, conflist shape — host-local on a /16 —
and images from the local registry, pre-pulled), then measured one after the other so each runtime's
monitors are alone on the host: pods are added (``--workers`` at a time) up to each level, the host is
left alone for ``--settle`` seconds, then every process is read:

* crio: the daemon and its helpers (its process tree without the monitors), and the monitors — ``conmon``
  processes whose command line names crio's exit directory or whose parent is the daemon (a subreaper);
* containerd: the daemon's process tree, and the shims — ``containerd-shim-runc-v2`` whose ``-address``
  is this containerd's socket.

The containers themselves (pause, sleep) are not runtime memory and are not counted. After the last level
the runtime's pods are all removed and the daemon measured once more ("after"). The table gives the sums in
MiB, the monitors' mean per pod and the total's growth per pod over the 0-pod figure, and the ratio
crio/containerd of the totals (target: at most 0.5 at 50 and 110 pods).

Run: ``.venv/bin/python -m bench.memory [--levels 0,50,110] [--settle 10] [--workers 4]``
"""

from __future__ import annotations

import argparse
import time
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import grpc

from bench.common import MIB, crio_source, machine_state, print_table
from bench.cri import (
    BUSYBOX,
    PAUSE,
    container_config,
    containers_supported,
    create_container,
    describe_error,
    pod_config,
    remove_everything,
    run_pod,
    start_container,
)
from bench.side_by_side import RUNTIMES, Memory, Runtime, SideBySide
from crio.core.api import api_pb2 as pb

TARGET_RATIO = 0.5
KIB_PER_MIB = MIB // 1024


@dataclass(frozen=True)
class Reading:
    """One runtime's memory at one number of running pods."""

    runtime: str
    label: str  # the level, or "after" once every pod is removed
    pods: int
    daemon: Memory
    monitors: Memory

    @property
    def total(self) -> Memory:
        """Daemon plus monitors."""
        return self.daemon + self.monitors


def start_pod(runtime: Runtime, name: str) -> str:
    """A pod with one running busybox ``sleep 3600``; "" on success, else the error."""
    client = runtime.client
    try:
        pod = pod_config(name, runtime.cgroup_parent, runtime.log_root)
        pod_id = run_pod(client, pod)
        container_id = create_container(client, pod_id, container_config(), pod)
        start_container(client, container_id)
    except Exception as exc:  # reported; the level is measured with the pods that did start
        return describe_error(exc)
    return ""


def grow(runtime: Runtime, count: int, workers: int) -> list[str]:
    """Start ``count`` more pods, ``workers`` at a time; the errors."""
    run = uuid.uuid4().hex[:6]
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        results = list(pool.map(lambda i: start_pod(runtime, f"mem-{run}-{i}"), range(count)))
    return [r for r in results if r]


def measure(runtime: Runtime, label: str, pods: int) -> Reading:
    """Read the daemon's and the monitors' memory now."""
    return Reading(runtime.name, label, pods, runtime.daemon_memory(), runtime.monitors_memory())


def ready_pods(runtime: Runtime) -> int:
    """Pods the runtime reports ready."""
    reply = runtime.client.runtime.ListPodSandbox(pb.ListPodSandboxRequest(), timeout=60)
    return sum(1 for item in reply.items if item.state == pb.SANDBOX_READY)


def run_levels(runtime: Runtime, levels: Sequence[int], settle: float, workers: int) -> list[Reading]:
    """Grow ``runtime``'s pods through ``levels``, measuring at each; then remove them and measure again."""
    readings = []
    running = 0
    for level in levels:
        if level > running:
            began = time.monotonic()
            errors = grow(runtime, level - running, workers)
            print(
                f"{runtime.name}: {level - running} pods started in {time.monotonic() - began:.1f} s"
                + (f", {len(errors)} failed (first: {errors[0]})" if errors else "")
            )
            running = level
        time.sleep(settle)
        readings.append(measure(runtime, str(level), ready_pods(runtime)))
    began = time.monotonic()
    errors = remove_everything(runtime.client)
    print(
        f"{runtime.name}: all pods removed in {time.monotonic() - began:.1f} s"
        + (f", {len(errors)} errors (first: {errors[0]})" if errors else "")
    )
    time.sleep(settle)
    readings.append(measure(runtime, "after", ready_pods(runtime)))
    return readings


def _mib(kib: float) -> str:
    return f"{kib / KIB_PER_MIB:.1f}"


def print_readings(readings: Sequence[Reading]) -> list[str]:
    """The memory table with ratio rows; return the verdict lines (printed too)."""
    rows: list[list[object]] = []
    idle = {r.runtime: r.total for r in readings if r.label == "0"}
    for r in readings:
        base = idle.get(r.runtime)
        growth = per_monitor_pod = "-"
        if r.pods:
            per_monitor_pod = f"{_mib(r.monitors.rss_kib / r.pods)} / {_mib(r.monitors.pss_kib / r.pods)}"
            if base is not None:
                extra = r.total.rss_kib - base.rss_kib, r.total.pss_kib - base.pss_kib
                growth = f"{_mib(extra[0] / r.pods)} / {_mib(extra[1] / r.pods)}"
        rows.append(
            [
                r.runtime,
                r.label,
                r.pods,
                r.daemon.processes,
                _mib(r.daemon.rss_kib),
                _mib(r.daemon.pss_kib),
                r.monitors.processes,
                _mib(r.monitors.rss_kib),
                _mib(r.monitors.pss_kib),
                _mib(r.total.rss_kib),
                _mib(r.total.pss_kib),
                per_monitor_pod,
                growth,
            ]
        )
    verdicts = []
    by_key = {(r.runtime, r.label): r for r in readings}
    for label in dict.fromkeys(r.label for r in readings):
        ours, theirs = by_key.get(("crio", label)), by_key.get(("containerd", label))
        if ours is None or theirs is None:
            continue
        rss = ours.total.rss_kib / theirs.total.rss_kib if theirs.total.rss_kib else float("inf")
        pss = ours.total.pss_kib / theirs.total.pss_kib if theirs.total.pss_kib else float("inf")
        rows.append(
            [
                "crio/containerd",
                label,
                "-",
                "-",
                "-",
                "-",
                "-",
                "-",
                "-",
                f"{rss:.2f}x",
                f"{pss:.2f}x",
                "-",
                "-",
            ]
        )
        if label.isdigit() and int(label) > 0:
            met = "meets" if max(rss, pss) <= TARGET_RATIO else "MISSES"
            verdicts.append(
                f"{label} pods: crio total {rss:.2f}x RSS, {pss:.2f}x PSS of containerd — {met} the target "
                f"(≤{TARGET_RATIO:.2f}x)"
            )
    headers = [
        "runtime",
        "pods (level)",
        "ready",
        "daemon procs",
        "daemon RSS",
        "daemon PSS",
        "monitors",
        "monitors RSS",
        "monitors PSS",
        "total RSS",
        "total PSS",
        "monitors/pod RSS / PSS",
        "total growth/pod RSS / PSS",
    ]
    print_table("Runtime memory, MiB (RSS and PSS from /proc/PID/smaps_rollup)", headers, rows)
    print()
    for line in verdicts:
        print(line)
    return verdicts


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the options, measure each runtime through the levels, print the table."""
    parser = argparse.ArgumentParser(prog="python -m bench.memory", description=__doc__.split("\n")[0])
    parser.add_argument("--levels", default="0,50,110", help="running pods to measure at (default 0,50,110)")
    parser.add_argument("--settle", type=float, default=10.0, help="seconds of quiet before reading (10)")
    parser.add_argument("--workers", type=int, default=4, help="pods started at a time (default 4)")
    parser.add_argument("--runtimes", default=",".join(RUNTIMES), help="comma-separated (default both)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch directories")
    args = parser.parse_args(argv)
    levels = sorted({int(v) for v in args.levels.split(",")})

    print(f"machine: {machine_state()}")
    print(f"crio code: {crio_source()}")
    readings: list[Reading] = []
    status = 0
    with SideBySide(args.runtimes.split(","), images=(PAUSE, BUSYBOX), keep=args.keep) as side:
        print(side.describe())
        for runtime in side.runtimes:
            try:
                reason = containers_supported(runtime.client, runtime.cgroup_parent, runtime.log_root)
            except grpc.RpcError as exc:
                reason = describe_error(exc)
            if reason:
                print(f"{runtime.name}: containers do not work, not measured: {reason}")
                status = 2
                continue
            readings += run_levels(runtime, levels, args.settle, args.workers)
        print_readings(readings)
    print(f"machine: {machine_state()}")
    return status


if __name__ == "__main__":
    raise SystemExit(main())
