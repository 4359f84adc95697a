"""Where a pod (or container) lifecycle's time goes: RPC times, daemon CPU, every subprocess the daemon runs.

Runs ``--runs`` sequential cycles on each runtime in turn — bench.pod_lifecycle's Run → Stop → Remove pod
cycle, or with ``--cycle container`` bench.container_lifecycle's pod + busybox start and teardown —
while bench.proc_events follows the daemon's descendants (fork → exit of each: runc verbs, conmon, CNI
plugins, shims...). Per runtime it prints:

* the RPCs' p50, the daemon's own CPU per cycle (utime + stime of the daemon process; for crio that is the
  Python code, for containerd its Go code) and its reaped children's CPU;
* the *subprocess-busy* time per cycle: the union of the lifetimes of every short-lived descendant (not the
  monitors and containers, which live as long as the pod) — time in which the daemon was at least possibly
  waiting on a child; the rest of the cycle is the daemon's own work, IPC and scheduling;
* per process label and depth (1 = a direct child of the daemon): count and mean/total ms per cycle.

Cycles that took over ``--stall`` seconds (e.g. a stop that waited for its timeout) are counted and left out
of the breakdown. With ``--py-spy FILE`` crio's daemon is also sampled by py-spy during its cycles (a flame
graph SVG; collapsed stacks for a ``.txt`` name, speedscope JSON for ``.json``; ``--py-spy-idle`` includes
waiting threads). py-spy samples with ``--nonblocking`` (it does not stop the daemon) at 250 Hz.

Run: ``.venv/bin/python -m bench.profile_pods [--runs 30] [--runtimes crio,containerd] [--py-spy prof.svg]``
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bench import container_lifecycle, latency, pod_lifecycle, proc_events
from bench.common import crio_source, machine_state, median, print_table
from bench.cri import BUSYBOX, PAUSE, Timings
from bench.side_by_side import RUNTIMES, Runtime, SideBySide

# The processes that live as long as the pod (monitors and containers): not something an RPC waits on.
LONG_LIVED = ("pause", "sleep", "conmon (fork)", "containerd-shim-runc-v2")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
CYCLES: dict[str, tuple[latency.Cycle, tuple[str, ...]]] = {
    "pod": (pod_lifecycle.cycle, pod_lifecycle.RPCS),
    "container": (container_lifecycle.cycle, container_lifecycle.START + container_lifecycle.TEARDOWN),
}


def cpu_seconds(pid: int) -> tuple[float, float]:
    """(utime + stime, cutime + cstime) of ``pid`` in seconds."""
    with open(f"/proc/{pid}/stat") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    own = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    children = (int(fields[13]) + int(fields[14])) / CLOCK_TICKS
    return own, children


@dataclass
class Profile:
    """One runtime's profiled cycles."""

    runtime: str
    timings: list[Timings] = field(default_factory=list)
    walls: list[float] = field(default_factory=list)
    busy: list[float] = field(default_factory=list)
    processes: list[proc_events.Finished] = field(default_factory=list)
    stalled: int = 0
    failures: int = 0
    own_cpu: float = 0.0
    children_cpu: float = 0.0
    overruns: int = 0


def _py_spy() -> str | None:
    found = Path(sys.executable).with_name("py-spy")
    return str(found) if found.exists() else shutil.which("py-spy")


def profile(
    runtime: Runtime, cycle: latency.Cycle, runs: int, stall: float, py_spy: Path | None, idle: bool
) -> Profile:
    """Run ``runs`` traced cycles on ``runtime``."""
    result = Profile(runtime.name)
    pid = runtime.daemon_pid()
    spy: subprocess.Popen[bytes] | None = None
    if py_spy is not None:
        binary = _py_spy()
        if binary is None:
            print("py-spy is not installed (.venv/bin/pip install py-spy): no flame graph")
        else:
            fmt = {".txt": "raw", ".json": "speedscope"}.get(py_spy.suffix, "flamegraph")
            argv = [
                binary,
                "record",
                "-o",
                str(py_spy),
                "-f",
                fmt,
                "--pid",
                str(pid),
                "--rate",
                "250",
                "--nonblocking",
            ]
            spy = subprocess.Popen(argv + (["--idle"] if idle else []), stdout=subprocess.DEVNULL)
            time.sleep(1.0)
    own0, children0 = cpu_seconds(pid)
    with proc_events.ProcTracer(pid) as tracer:
        for index in range(runs):
            tracer.take()
            began = time.monotonic()
            try:
                timings = cycle(runtime, f"prof-{index}-{os.getpid()}")
            except Exception as exc:  # counted; the profile goes on
                print(f"{runtime.name}: cycle {index} failed: {exc}")
                result.failures += 1
                continue
            wall = time.monotonic() - began
            time.sleep(0.05)  # let the last exit events arrive
            finished = tracer.take()
            if wall > stall:
                result.stalled += 1
                continue
            result.timings.append(timings)
            result.walls.append(wall)
            result.busy.append(proc_events.busy_seconds(finished, LONG_LIVED))
            result.processes += finished
        result.overruns = tracer.overruns
    own1, children1 = cpu_seconds(pid)
    result.own_cpu, result.children_cpu = own1 - own0, children1 - children0
    if spy is not None:
        spy.send_signal(signal.SIGINT)
        try:
            spy.wait(60)
        except subprocess.TimeoutExpired:
            spy.kill()
        print(f"{runtime.name}: py-spy flame graph in {py_spy}")
    return result


def print_profiles(profiles: Sequence[Profile], rpcs: Sequence[str], top: int) -> None:
    """The summary table and the per-process tables."""
    rows: list[list[object]] = []
    for p in profiles:
        n = len(p.walls)
        if not n:
            rows.append([p.runtime, 0, p.stalled, p.failures, *(["-"] * (len(rpcs) + 5))])
            continue
        total = n + p.stalled
        rpc_p50 = [f"{median([t.rpcs.get(r, 0.0) * 1000 for t in p.timings]):.0f}" for r in rpcs]
        rows.append(
            [
                p.runtime,
                n,
                p.stalled,
                p.failures,
                f"{median(p.walls) * 1000:.0f}",
                *rpc_p50,
                f"{p.own_cpu / total * 1000:.0f}",
                f"{p.children_cpu / total * 1000:.0f}",
                f"{median(p.busy) * 1000:.0f}",
                f"{median([w - b for w, b in zip(p.walls, p.busy, strict=True)]) * 1000:.0f}",
            ]
        )
    headers = [
        "runtime",
        "cycles",
        "stalled",
        "failed",
        "cycle p50",
        *(f"{r} p50" for r in rpcs),
        "daemon CPU/cycle",
        "children CPU/cycle",
        "subprocess-busy p50",
        "rest p50",
    ]
    print_table("Cycle profile, ms (CPU per cycle is a mean over all cycles)", headers, rows)
    for p in profiles:
        n = len(p.walls)
        if not n:
            continue
        lines = [
            [
                s.label,
                s.depth,
                f"{s.count / n:.1f}",
                f"{s.seconds / s.count * 1000:.1f}",
                f"{s.seconds / n * 1000:.1f}",
            ]
            for s in proc_events.summarize(p.processes)[:top]
        ]
        overrun = f"; {p.overruns} netlink overruns (events lost)" if p.overruns else ""
        print_table(
            f"{p.runtime}: processes run per cycle (fork → exit; depth 1 = the daemon's children){overrun}",
            ["process", "depth", "per cycle", "mean ms", "ms per cycle"],
            lines,
        )


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the options, profile each runtime, print the tables."""
    parser = argparse.ArgumentParser(prog="python -m bench.profile_pods", description=__doc__.split("\n")[0])
    parser.add_argument("--cycle", choices=sorted(CYCLES), default="pod", help="what to profile (pod)")
    parser.add_argument("--runs", type=int, default=30, help="profiled cycles per runtime (default 30)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed cycles per runtime first (default 3)")
    parser.add_argument("--stall", type=float, default=5.0, help="cycles over this many s are left out (5)")
    parser.add_argument("--runtimes", default=",".join(RUNTIMES), help="comma-separated (default both)")
    parser.add_argument("--py-spy", type=Path, help="also record crio's daemon with py-spy into this SVG")
    parser.add_argument("--py-spy-idle", action="store_true", help="py-spy: include idle (waiting) threads")
    parser.add_argument("--top", type=int, default=15, help="process labels shown per runtime (default 15)")
    args = parser.parse_args(argv)

    print(f"machine: {machine_state()}")
    print(f"crio code: {crio_source()}")
    cycle, rpcs = CYCLES[args.cycle]
    images = (PAUSE, BUSYBOX) if args.cycle == "container" else (PAUSE,)
    with SideBySide(args.runtimes.split(","), images=images) as side:
        print(side.describe())
        profiles = []
        for runtime in side.runtimes:
            for index in range(args.warmup):
                cycle(runtime, f"warm-{index}-{os.getpid()}")
            spy = args.py_spy if runtime.name == "crio" else None
            profiles.append(profile(runtime, cycle, args.runs, args.stall, spy, args.py_spy_idle))
        print_profiles(profiles, rpcs, args.top)
    print(f"machine: {machine_state()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
