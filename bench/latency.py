"""Timing CRI lifecycles side by side: sequential cycles alternating between runtimes, then a parallel
phase per runtime, and the tables (p50/p99/mean of the headline and of each RPC, crio/containerd and,
with ``--baseline REF``, crio/crio-baseline ratios).

A *cycle* is a function ``(runtime, name) -> Timings`` that does one whole lifecycle (creating what it
times and removing it again) and records each RPC's duration; the benchmarks define which RPCs make up
the headline figure (the pod benchmark: all three; the container one: Run+Create+Start).
"""

from __future__ import annotations

import argparse
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from bench.common import add_quiet_argument, load1, percentile, print_table, wait_for_quiet
from bench.cri import Timings, describe_error
from bench.side_by_side import BASELINE, KNOWN_RUNTIMES, RUNTIMES, Runtime

Cycle = Callable[[Runtime, str], Timings]
SEQUENTIAL = "sequential"
TARGET_RATIO = 1.0
AIM_RATIO = 0.75
BASELINE_RATIO = 1.05  # crio may be at most 5 % slower than the baseline revision


@dataclass
class Phase:
    """The cycles of one runtime in one mode."""

    runtime: str
    mode: str
    timings: list[Timings] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    wall_seconds: float = 0.0
    load_before: float = 0.0
    load_after: float = 0.0

    def headline(self, rpcs: Sequence[str]) -> list[float]:
        """Per-cycle sums over ``rpcs``, in ms."""
        return [t.total(*rpcs) * 1000 for t in self.timings]

    def rpc(self, name: str) -> list[float]:
        """Per-cycle durations of one RPC, in ms."""
        return [t.rpcs[name] * 1000 for t in self.timings if name in t.rpcs]


def _one(cycle: Cycle, runtime: Runtime, name: str, phase: Phase) -> None:
    try:
        phase.timings.append(cycle(runtime, name))
    except Exception as exc:  # recorded and reported; one failed cycle must not end the benchmark
        phase.failures.append(f"{name}: {describe_error(exc)}")


def warm_up(cycle: Cycle, runtimes: Sequence[Runtime], count: int) -> None:
    """``count`` untimed cycles per runtime (first-use effects: bridge creation, caches, page cache)."""
    for runtime in runtimes:
        phase = Phase(runtime.name, "warm-up")
        for index in range(count):
            _one(cycle, runtime, f"warm-{index}-{uuid.uuid4().hex[:6]}", phase)
        for failure in phase.failures:
            print(f"warm-up {runtime.name}: {failure}")


def sequential(cycle: Cycle, runtimes: Sequence[Runtime], count: int) -> list[Phase]:
    """``count`` cycles per runtime one at a time, alternating runtimes (who goes first alternates too), so
    both see the same background load."""
    phases = {rt.name: Phase(rt.name, SEQUENTIAL, load_before=load1()) for rt in runtimes}
    started = {rt.name: 0.0 for rt in runtimes}
    run = uuid.uuid4().hex[:6]
    for index in range(count):
        order = list(runtimes) if index % 2 == 0 else list(reversed(runtimes))
        for runtime in order:
            began = time.monotonic()
            _one(cycle, runtime, f"seq-{run}-{index}", phases[runtime.name])
            started[runtime.name] += time.monotonic() - began
    for name, phase in phases.items():
        phase.wall_seconds = started[name]
        phase.load_after = load1()
    return list(phases.values())


def parallel(cycle: Cycle, runtime: Runtime, count: int, workers: int) -> Phase:
    """``count`` cycles of one runtime, ``workers`` at a time."""
    phase = Phase(runtime.name, f"{workers} parallel", load_before=load1())
    run = uuid.uuid4().hex[:6]
    began = time.monotonic()
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"bench-{runtime.name}") as pool:
        futures = [pool.submit(_one, cycle, runtime, f"par-{run}-{i}", phase) for i in range(count)]
        for future in futures:
            future.result()
    phase.wall_seconds = time.monotonic() - began
    phase.load_after = load1()
    return phase


def settle(quiet: float) -> None:
    """With ``quiet`` > 0, wait (at most 5 min) until other work keeps fewer than ``quiet`` CPUs busy."""
    if quiet > 0:
        reading = wait_for_quiet(quiet)
        if reading >= quiet:
            print(f"the machine stayed busy ({reading:.2f} CPUs); measuring anyway")


def run_all(
    cycle: Cycle,
    runtimes: Sequence[Runtime],
    count: int,
    workers: int,
    warmup: int,
    rounds: int = 1,
    quiet: float = 0.0,
) -> list[Phase]:
    """Warm-up, the sequential phase, then the parallel phases (runtime order alternating per round);
    before each phase, wait for the machine to be ``quiet`` (see :func:`settle`)."""
    warm_up(cycle, runtimes, warmup)
    settle(quiet)
    phases = sequential(cycle, runtimes, count)
    if workers > 1:
        merged: dict[str, Phase] = {}
        for round_index in range(rounds):
            order = list(runtimes) if round_index % 2 == 0 else list(reversed(runtimes))
            for runtime in order:
                settle(quiet)
                phase = parallel(cycle, runtime, count, workers)
                if runtime.name in merged:
                    into = merged[runtime.name]
                    into.timings += phase.timings
                    into.failures += phase.failures
                    into.wall_seconds += phase.wall_seconds
                    into.load_after = phase.load_after
                else:
                    merged[runtime.name] = phase
        phases += [merged[rt.name] for rt in runtimes]
    return phases


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options every lifecycle benchmark takes (see :func:`run_all`)."""
    parser.add_argument("--runs", type=int, default=50, help="cycles per runtime and phase (default 50)")
    parser.add_argument("--parallel", type=int, default=10, help="workers of the parallel phase (default 10)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed cycles per runtime first (default 3)")
    parser.add_argument("--rounds", type=int, default=1, help="parallel phases per runtime (default 1)")
    add_quiet_argument(parser, "each phase", default=0.0)
    parser.add_argument(
        "--runtimes",
        default=",".join(RUNTIMES),
        help=f"comma-separated, of {', '.join(KNOWN_RUNTIMES)} (default {','.join(RUNTIMES)}; "
        f"{BASELINE} needs --baseline)",
    )
    parser.add_argument(
        "--baseline",
        metavar="REF",
        help=f"also run {BASELINE}: crio from git revision REF of this repository (extracted into the "
        f"scratch directory), alternating with the others; adds {BASELINE} to --runtimes when missing",
    )
    parser.add_argument("--keep", action="store_true", help="keep the scratch directories")


def parse_arguments(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    """``parser.parse_args`` plus ``runtime_names``: ``--runtimes`` as a list, checked, with
    ``crio-baseline`` added when ``--baseline`` is given."""
    args = parser.parse_args(argv)
    names = [name.strip() for name in args.runtimes.split(",") if name.strip()]
    if unknown := sorted(set(names) - set(KNOWN_RUNTIMES)):
        parser.error(f"--runtimes: unknown {', '.join(unknown)}; choose from {', '.join(KNOWN_RUNTIMES)}")
    if len(set(names)) != len(names):
        parser.error(f"--runtimes: a runtime is named twice in {args.runtimes}")
    if args.baseline and BASELINE not in names:
        names.append(BASELINE)
    if BASELINE in names and not args.baseline:
        parser.error(f"--runtimes {BASELINE} needs --baseline REF")
    args.runtime_names = names
    return args


def run_from_arguments(cycle: Cycle, runtimes: Sequence[Runtime], args: argparse.Namespace) -> list[Phase]:
    """:func:`run_all` with the options of :func:`add_arguments`."""
    return run_all(cycle, runtimes, args.runs, args.parallel, args.warmup, args.rounds, args.quiet)


# ---------------------------------------------------------------------------------------------- tables


def verdict(ratio: float) -> str:
    """How a crio/containerd ratio (lower is better) compares with the target and the aim."""
    if ratio <= AIM_RATIO:
        return "meets the aim"
    if ratio <= TARGET_RATIO:
        return "meets the target"
    return "MISSES the target"


def baseline_verdict(ratio: float) -> str:
    """How a crio/crio-baseline ratio (lower is better) compares with the allowed 5 % slow-down."""
    allowed = f"{round((BASELINE_RATIO - 1) * 100)} %"
    return f"within {allowed}" if ratio <= BASELINE_RATIO else f"SLOWER by more than {allowed}"


@dataclass(frozen=True)
class Comparison:
    """A ratio row ``reference/peer`` of the tables, with the verdict on the larger of p50's and p99's."""

    reference: str
    peer: str
    judge: Callable[[float], str]
    rule: str  # the thresholds, for the verdict line


COMPARISONS = (
    Comparison("crio", "containerd", verdict, f"target ≤{TARGET_RATIO:.2f}x, aim ≤{AIM_RATIO:.2f}x"),
    Comparison("crio", BASELINE, baseline_verdict, f"threshold ≤{BASELINE_RATIO:.2f}x"),
)


def _ms(value: float) -> str:
    return f"{value:.0f}" if value >= 100 else f"{value:.1f}"


def _stats(values: Sequence[float]) -> tuple[float, float, float]:
    return percentile(values, 50), percentile(values, 99), sum(values) / len(values)


def print_tables(
    title: str,
    phases: Sequence[Phase],
    headline: Sequence[str],
    rpcs: Sequence[str],
    comparisons: Sequence[Comparison] = COMPARISONS,
) -> list[str]:
    """The headline table (with a ratio row per mode for each of ``comparisons`` whose two runtimes both
    ran: crio/containerd, crio/crio-baseline) and, when ``rpcs`` are named, the per-RPC p50/p99 table and
    the failures; return the verdict lines (printed too)."""
    rows: list[list[object]] = []
    stats: dict[tuple[str, str], tuple[float, float, float]] = {}
    for phase in phases:
        values = phase.headline(headline)
        if not values:
            rows.append([phase.runtime, phase.mode, 0, "-", "-", "-", "-", "-", len(phase.failures), "-"])
            continue
        p50, p99, mean = _stats(values)
        stats[(phase.runtime, phase.mode)] = (p50, p99, mean)
        rate = len(values) / phase.wall_seconds if phase.wall_seconds else 0.0
        rows.append(
            [
                phase.runtime,
                phase.mode,
                len(values),
                _ms(p50),
                _ms(p99),
                _ms(mean),
                _ms(max(values)),
                f"{rate:.2f}",
                len(phase.failures),
                f"{phase.load_before:.1f}-{phase.load_after:.1f}",
            ]
        )
    verdicts = []
    for comparison in comparisons:
        reference, peer = comparison.reference, comparison.peer
        for mode in dict.fromkeys(p.mode for p in phases):
            ours, theirs = stats.get((reference, mode)), stats.get((peer, mode))
            if ours is None or theirs is None:
                continue
            ratios = [a / b if b else float("inf") for a, b in zip(ours, theirs, strict=True)]
            rows.append(
                [f"{reference}/{peer}", mode, "-", *(f"{r:.2f}x" for r in ratios), "-", "-", "-", "-"]
            )
            verdicts.append(
                f"{mode}: p50 {ratios[0]:.2f}x, p99 {ratios[1]:.2f}x, mean {ratios[2]:.2f}x of {peer} — "
                f"{comparison.judge(max(ratios[:2]))} ({comparison.rule})"
            )
    headers = ["runtime", "mode", "n", "p50 ms", "p99 ms", "mean ms", "max ms", "cycles/s", "failed", "load"]
    print_table(f"{title} ({' + '.join(headline)})", headers, rows)
    if rpcs:
        _print_rpcs(phases, rpcs)
    print()
    for line in verdicts:
        print(line)
    return verdicts


def _print_rpcs(phases: Sequence[Phase], rpcs: Sequence[str]) -> None:
    per_rpc: list[list[object]] = []
    for phase in phases:
        cells: list[object] = [phase.runtime, phase.mode]
        for name in rpcs:
            values = phase.rpc(name)
            cells.append(f"{_ms(percentile(values, 50))} / {_ms(percentile(values, 99))}" if values else "-")
        per_rpc.append(cells)
    print_table("Per RPC, p50 / p99 ms", ["runtime", "mode", *rpcs], per_rpc)
    for phase in phases:
        for failure in phase.failures[:5]:
            print(f"failed ({phase.runtime}, {phase.mode}) {failure}")
        if len(phase.failures) > 5:
            print(f"... and {len(phase.failures) - 5} more failures ({phase.runtime}, {phase.mode})")
