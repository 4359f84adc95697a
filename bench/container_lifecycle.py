"""Container start latency: RunPodSandbox + CreateContainer + StartContainer of busybox (``sleep 3600``),
then StopContainer, RemoveContainer, StopPodSandbox, RemovePodSandbox — crio and containerd side by side.

The set-up is bench.pod_lifecycle's (bench.side_by_side: both runtimes at once, same runc, conflist shape
and images from the local registry — the pause image and busybox pre-pulled through PullImage — one Python
CRI client). Each cycle makes a fresh pod with a log directory created first (as the kubelet does), one
container ``busybox`` logging to ``busybox/0.log``, and tears it all down again; StopContainer uses a
0 s grace period (``sleep`` as PID 1 ignores SIGTERM, so any grace period would only add a constant wait).

The headline is Run+Create+Start (what a pod start costs the kubelet); the teardown (the four remaining
RPCs) gets its own table. Phases as in bench.pod_lifecycle: warm-up, ``--runs`` sequential cycles per
runtime alternating between runtimes, ``--runs`` cycles per runtime with ``--parallel`` workers.

When a runtime answers CreateContainer with an error (crio before its container RPCs land: UNIMPLEMENTED),
it is reported and left out; the other runtime still runs, for reference.

``--baseline REF`` adds ``crio-baseline`` (crio from git revision REF) as in bench.pod_lifecycle: both tables
then have crio/crio-baseline ratios, judged against 1.05.

Run: ``.venv/bin/python -m bench.container_lifecycle [--runs 50] [--parallel 10] [--baseline REF]``
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import grpc

from bench import latency
from bench.common import crio_source, machine_state
from bench.cri import (
    BUSYBOX,
    PAUSE,
    Timings,
    container_config,
    containers_supported,
    create_container,
    pod_config,
    remove_container,
    remove_pod,
    run_pod,
    start_container,
    stop_container,
    stop_pod,
)
from bench.side_by_side import Runtime, SideBySide

START = ("RunPodSandbox", "CreateContainer", "StartContainer")
TEARDOWN = ("StopContainer", "RemoveContainer", "StopPodSandbox", "RemovePodSandbox")


def cycle(runtime: Runtime, name: str) -> Timings:
    """One pod with one busybox container: start it all, then tear it all down (also after a failure)."""
    timings = Timings()
    client = runtime.client
    pod = pod_config(name, runtime.cgroup_parent, runtime.log_root)
    pod_id = run_pod(client, pod, timings)
    container_id = ""
    try:
        container_id = create_container(client, pod_id, container_config(), pod, timings)
        start_container(client, container_id, timings)
    finally:
        try:
            if container_id:
                stop_container(client, container_id, 0, timings)
                remove_container(client, container_id, timings)
        finally:
            try:
                stop_pod(client, pod_id, timings)
            finally:
                remove_pod(client, pod_id, timings)
    return timings


def usable(runtimes: Sequence[Runtime]) -> list[Runtime]:
    """The runtimes whose CreateContainer works (the others are reported)."""
    found = []
    for runtime in runtimes:
        try:
            reason = containers_supported(runtime.client, runtime.cgroup_parent, runtime.log_root)
        except grpc.RpcError as exc:
            reason = f"{exc.code().name}: {exc.details()}"
        if reason:
            print(f"{runtime.name}: containers do not work, left out: {reason}")
        else:
            found.append(runtime)
    return found


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the options, run the phases, print the tables."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.container_lifecycle", description=__doc__.split("\n")[0]
    )
    latency.add_arguments(parser)
    args = latency.parse_arguments(parser, argv)

    print(f"machine: {machine_state()}")
    print(f"crio code: {crio_source()}")
    status = 0
    with SideBySide(
        args.runtime_names, images=(PAUSE, BUSYBOX), keep=args.keep, baseline=args.baseline
    ) as side:
        print(side.describe())
        runtimes = usable(side.runtimes)
        if len(runtimes) < len(side.runtimes):
            status = 2
        if runtimes:
            phases = latency.run_from_arguments(cycle, runtimes, args)
            latency.print_tables("Container start, ms per cycle", phases, START, START + TEARDOWN)
            latency.print_tables("Teardown, ms per cycle", phases, TEARDOWN, ())
    print(f"machine: {machine_state()}")
    return status


if __name__ == "__main__":
    raise SystemExit(main())
