"""ExecSync latency and streamed-exec throughput, crio and containerd side by side in the same run.

Set-up: bench.side_by_side (both daemons at once, the same runc, conflist shape and busybox image from the
local registry). Each runtime gets one pod with one busybox container (``sleep 3600``) holding a file of
``--size-mb`` random bytes in its /tmp (written with ExecSync ``dd``).

1. **ExecSync latency**: ExecSync ``true`` (timeout 30 s), timed around the RPC by one Python CRI client.
   ``--warmup`` untimed calls per runtime, then ``--runs`` sequential calls alternating between the runtimes,
   then ``--runs`` calls per runtime spread over ``--parallel`` concurrent callers. p50/p99/mean in ms.
2. **Exec throughput**: ``crictl exec CID cat /tmp/big`` (crictl v1.37.0) through the runtime's streaming
   server, over SPDY and over WebSocket (a transport that fails once, e.g. containerd 1.6's WebSocket, which
   predates the ``v5.channel.k8s.io`` protocol crictl's client requires, is reported and not retried).
   The benchmark reads crictl's stdout and counts the bytes;
   MB/s = bytes / wall time of the crictl process (its ~30 ms start-up included). ``--rounds`` rounds
   alternating between runtimes; the median. The daemon's RSS is sampled during the copy: the growth of
   its peak over its size before shows that output is not buffered (the copy is paced by the reader).

Targets (issue 6): crio's ExecSync p50 at most containerd's; throughput at least 80 % of containerd's.

Run: ``.venv/bin/python -m bench.exec [--runs 50] [--parallel 10] [--size-mb 1024] [--rounds 5]``
"""

from __future__ import annotations

import argparse
import os
import subprocess
import time
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from bench.common import REPO, RssSampler, crio_source, machine_state, percentile, print_table
from bench.cri import BUSYBOX, PAUSE, container_config, create_container, pod_config, run_pod, start_container
from bench.side_by_side import Runtime, SideBySide
from crio.core.api import api_pb2 as pb

CRICTL = REPO / "_output" / "bin" / "crictl"
BIG_FILE = "/tmp/big"
EXEC_TIMEOUT = 30


@dataclass
class Target:
    """One runtime with its benchmark container."""

    runtime: Runtime
    socket: str
    container_id: str
    latencies: dict[str, list[float]] = field(default_factory=dict)  # mode → ms
    rates: dict[str, list[float]] = field(default_factory=dict)  # transport → MB/s
    rss_growth: dict[str, list[int]] = field(default_factory=dict)  # transport → KiB
    failures: list[str] = field(default_factory=list)
    unsupported: set[str] = field(default_factory=set)  # transports that failed once: not retried


def prepare(runtime: Runtime, socket: str, size_mb: int) -> Target:
    """A pod and a busybox container with the big file."""
    pod = pod_config(f"exec-{uuid.uuid4().hex[:8]}", runtime.cgroup_parent, runtime.log_root)
    pod_id = run_pod(runtime.client, pod)
    container_id = create_container(runtime.client, pod_id, container_config(), pod)
    start_container(runtime.client, container_id)
    command = ["dd", "if=/dev/urandom", f"of={BIG_FILE}", "bs=1048576", f"count={size_mb}"]
    reply = runtime.client.runtime.ExecSync(
        pb.ExecSyncRequest(container_id=container_id, cmd=command, timeout=600), timeout=660
    )
    if reply.exit_code != 0:
        raise RuntimeError(f"{runtime.name}: dd failed: {reply.stderr.decode(errors='replace')}")
    return Target(runtime, socket, container_id)


def exec_true(target: Target) -> float:
    """One ExecSync ``true``; its duration in ms."""
    request = pb.ExecSyncRequest(container_id=target.container_id, cmd=["true"], timeout=EXEC_TIMEOUT)
    started = time.perf_counter()
    reply = target.runtime.client.runtime.ExecSync(request, timeout=EXEC_TIMEOUT + 10)
    elapsed = (time.perf_counter() - started) * 1000
    if reply.exit_code != 0:
        raise RuntimeError(f"{target.runtime.name}: ExecSync true exited {reply.exit_code}")
    return elapsed


def latency(targets: Sequence[Target], runs: int, parallel: int, warmup: int) -> None:
    """The sequential and parallel ExecSync phases."""
    for target in targets:
        for _ in range(warmup):
            exec_true(target)
    for _ in range(runs):
        for target in targets:
            target.latencies.setdefault("sequential", []).append(exec_true(target))
    for target in targets:
        with ThreadPoolExecutor(parallel) as pool:
            values = list(pool.map(lambda _i, t=target: exec_true(t), range(runs)))
        target.latencies[f"{parallel} in parallel"] = values


def crictl_argv(target: Target, transport: str) -> list[str]:
    """crictl exec cat of the big file (explicit endpoints: no crictl.yaml is read)."""
    endpoint = f"unix://{target.socket}"
    config = Path(target.socket).with_name("crictl-bench.yaml")
    config.write_text(f"runtime-endpoint: {endpoint}\nimage-endpoint: {endpoint}\n")
    return [
        str(CRICTL),
        "--config",
        str(config),
        "-r",
        endpoint,
        "-i",
        endpoint,
        "exec",
        "--transport",
        transport,
        target.container_id,
        "cat",
        BIG_FILE,
    ]


def copy_once(target: Target, transport: str, expected: int) -> None:
    """One ``crictl exec cat``: records MB/s and the daemon's RSS growth (or the failure)."""
    daemon_pid = target.runtime.daemon_pid()
    before = RssSampler(daemon_pid).sample()
    with RssSampler(daemon_pid) as sampler:
        started = time.perf_counter()
        proc = subprocess.Popen(
            crictl_argv(target, transport), stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        assert proc.stdout is not None and proc.stderr is not None
        total = 0
        while chunk := os.read(proc.stdout.fileno(), 1 << 20):
            total += len(chunk)
        stderr = proc.stderr.read()
        code = proc.wait()
        elapsed = time.perf_counter() - started
    if code != 0 or total != expected:
        message = stderr.decode(errors="replace").strip().splitlines()[-1:] or [""]
        target.failures.append(f"{transport}: exit {code}, {total} of {expected} bytes: {message[0][:160]}")
        target.unsupported.add(transport)
        return
    target.rates.setdefault(transport, []).append(total / elapsed / 1e6)
    target.rss_growth.setdefault(transport, []).append(max(0, sampler.peak_kib - before))


def throughput(targets: Sequence[Target], rounds: int, size_mb: int) -> None:
    """``rounds`` copies per runtime and transport, alternating."""
    expected = size_mb * 1048576
    for _ in range(rounds):
        for target in targets:
            for transport in ("spdy", "websocket"):
                if transport not in target.unsupported:
                    copy_once(target, transport, expected)


def _ms(values: Sequence[float], pct: float) -> str:
    return f"{percentile(values, pct):.1f}" if values else "-"


def report(targets: Sequence[Target], parallel: int) -> None:
    """Print the tables and the verdicts."""
    rows = []
    for mode in ("sequential", f"{parallel} in parallel"):
        for target in targets:
            values = target.latencies.get(mode, [])
            mean = f"{sum(values) / len(values):.1f}" if values else "-"
            rows.append([mode, target.runtime.name, len(values), _ms(values, 50), _ms(values, 99), mean])
    print_table("ExecSync `true` latency, ms", ["mode", "runtime", "calls", "p50", "p99", "mean"], rows)
    rows = []
    for target in targets:
        for transport, rates in target.rates.items():
            growth = target.rss_growth.get(transport, [])
            rows.append(
                [
                    target.runtime.name,
                    transport,
                    len(rates),
                    f"{percentile(rates, 50):.0f}",
                    f"{min(rates):.0f}",
                    f"{max(rates):.0f}",
                    f"{max(growth) / 1024:.1f}" if growth else "-",
                ]
            )
    headers = ["runtime", "transport", "runs", "MB/s median", "min", "max", "daemon RSS growth MiB (max)"]
    print_table("Exec throughput: crictl exec cat of the file", headers, rows)
    by_name = {t.runtime.name: t for t in targets}
    crio, containerd = by_name.get("crio"), by_name.get("containerd")
    if crio is not None and containerd is not None:
        verdicts = []
        ours, theirs = crio.latencies.get("sequential", []), containerd.latencies.get("sequential", [])
        if ours and theirs:
            ratio = percentile(ours, 50) / percentile(theirs, 50)
            met = "met" if ratio <= 1.0 else "NOT met"
            verdicts.append(["ExecSync p50 (sequential) crio/containerd", f"{ratio:.2f}", "<= 1.00", met])
        ours_rate, theirs_rate = crio.rates.get("spdy", []), containerd.rates.get("spdy", [])
        if ours_rate and theirs_rate:
            ratio = percentile(ours_rate, 50) / percentile(theirs_rate, 50)
            met = "met" if ratio >= 0.8 else "NOT met"
            verdicts.append(["exec throughput (SPDY) crio/containerd", f"{ratio:.2f}", ">= 0.80", met])
        print_table("Targets", ["figure", "ratio", "target", "verdict"], verdicts)
    for target in targets:
        for failure in target.failures:
            print(f"{target.runtime.name}: failed: {failure}")


def socket_of(side: SideBySide, name: str) -> str:
    """The CRI socket of a started runtime."""
    daemon = side._crio if name == "crio" else side._containerd
    assert daemon is not None
    return str(daemon.socket)


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the options, set both runtimes up, run both phases, print the tables."""
    parser = argparse.ArgumentParser(prog="python -m bench.exec", description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=50, help="ExecSync calls per runtime and mode")
    parser.add_argument("--parallel", type=int, default=10, help="concurrent callers in the parallel mode")
    parser.add_argument("--warmup", type=int, default=5, help="untimed ExecSync calls per runtime")
    parser.add_argument("--size-mb", type=int, default=1024, help="size of the file cat streams (MiB)")
    parser.add_argument("--rounds", type=int, default=5, help="throughput runs per runtime and transport")
    parser.add_argument("--runtimes", default="crio,containerd", help="comma-separated: crio, containerd")
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory")
    args = parser.parse_args(argv)
    if not CRICTL.exists():
        subprocess.run(["bash", str(REPO / "hack" / "build-cri-tools.sh")], check=True)
    print(f"machine: {machine_state()}")
    print(f"crio code: {crio_source()}")
    with SideBySide(args.runtimes.split(","), images=(PAUSE, BUSYBOX), keep=args.keep) as side:
        print(side.describe())
        targets = [prepare(rt, socket_of(side, rt.name), args.size_mb) for rt in side.runtimes]
        latency(targets, args.runs, args.parallel, args.warmup)
        throughput(targets, args.rounds, args.size_mb)
        report(targets, args.parallel)
    print(f"machine: {machine_state()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
