"""Pod lifecycle latency: RunPodSandbox → StopPodSandbox → RemovePodSandbox, crio and containerd side by side.

Both runtimes run at once on scratch directories (bench.side_by_side: same runc, same conflist shape, the
same pause image from the local registry, pre-pulled through PullImage) and are driven by the same Python
CRI client. Every cycle uses a fresh pod config (unique name and uid, a cgroup parent per runtime, no port
mappings, network/IPC namespaces of its own) and is timed from the client around each RPC.

Phases: ``--warmup`` untimed cycles per runtime; ``--runs`` sequential cycles per runtime, alternating
between the runtimes cycle by cycle so both meet the same background load; then ``--runs`` cycles per
runtime with ``--parallel`` workers (one runtime at a time). The table gives p50/p99/mean/max of the whole
cycle, cycles per second, failures, the 1-minute load average around the phase, and crio/containerd
ratios (target ≤ 1, aim ≤ 0.75); a second table gives each RPC's p50/p99.

``--baseline REF`` adds ``crio-baseline``, crio from git revision REF of this repository, run alongside and
alternated with the others like any runtime; the table then has crio/crio-baseline ratios, judged against
1.05 (no more than 5 % slower). ``--runtimes crio,crio-baseline --baseline REF`` compares only the two.

Run: ``.venv/bin/python -m bench.pod_lifecycle [--runs 50] [--parallel 10] [--warmup 3] [--baseline REF]``
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from bench import latency
from bench.common import crio_source, machine_state
from bench.cri import Timings, pod_config, remove_pod, run_pod, stop_pod
from bench.side_by_side import Runtime, SideBySide

RPCS = ("RunPodSandbox", "StopPodSandbox", "RemovePodSandbox")


def cycle(runtime: Runtime, name: str) -> Timings:
    """One pod: run, stop, remove (the pod is removed even when a later step fails)."""
    timings = Timings()
    pod_id = run_pod(runtime.client, pod_config(name, runtime.cgroup_parent), timings)
    try:
        stop_pod(runtime.client, pod_id, timings)
    finally:
        remove_pod(runtime.client, pod_id, timings)
    return timings


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the options, run the phases, print the tables."""
    parser = argparse.ArgumentParser(prog="python -m bench.pod_lifecycle", description=__doc__.split("\n")[0])
    latency.add_arguments(parser)
    args = latency.parse_arguments(parser, argv)

    print(f"machine: {machine_state()}")
    print(f"crio code: {crio_source()}")
    with SideBySide(args.runtime_names, keep=args.keep, baseline=args.baseline) as side:
        print(side.describe())
        phases = latency.run_from_arguments(cycle, side.runtimes, args)
        latency.print_tables("Pod lifecycle, ms per cycle", phases, RPCS, RPCS)
    print(f"machine: {machine_state()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
