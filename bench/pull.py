"""Pull + unpack of a multi-layer image from the local registry: crio vs ``skopeo copy`` into
containers-storage, with GNU ``tar -xzf`` of the same layer blobs as the practical floor.

Each round runs, in this order and each on a fresh store: crio (daemon stopped, store wiped, daemon started;
only the PullImage RPC is timed, the daemon's VmRSS is sampled every 20 ms during it), skopeo (the whole
process is timed; its peak RSS is ``ru_maxrss`` from ``wait4``), then the floor: GNU tar on the layer blobs
(fetched once with curl into a cache), serially into one directory (sum of the tar processes' times) and in
parallel, one tar per layer into its own directory (wall time). Before each step it waits for the machine to
be quiet (``--quiet``) and it reports the CPU other processes used during the step. MB/s is uncompressed
bytes (the sum of the image's layer diff sizes, read from crio's layers.json) per second, MB = 10^6 bytes.

Run: ``.venv/bin/python -m bench.pull [--runs 5] [--image quay.io/crio-test/multilayer:latest]``
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from bench import registry
from bench.common import (
    MB,
    BusyMeter,
    CrioDaemon,
    RssSampler,
    add_quiet_argument,
    crio_source,
    drop_dirty_pages,
    machine_state,
    median,
    print_table,
    process_cpu_seconds,
    remove_tree,
    run_measured,
    scratch_dir,
    status_kib,
    wait_for_quiet,
)
from tests.containers_tools import ContainersTools

DEFAULT_IMAGE = "quay.io/crio-test/multilayer:latest"
PUBLIC_PREFIX = "quay.io/crio-test/"
REGISTRY_PREFIX = "crio-test/"
TAR_SERIAL = "tar -xzf, serial"
TAR_PARALLEL = "tar -xzf, parallel"
TOOLS = ("crio", "skopeo", TAR_SERIAL, TAR_PARALLEL)
TARGET_RATIO = 1.0
AIM_RATIO = 0.75


@dataclass(frozen=True)
class Run:
    """One timed run of one tool, with the other CPU load around it."""

    tool: str
    seconds: float
    peak_rss_kib: int  # 0 when not measured
    before: float  # CPUs busy just before the run (machine-wide)
    others: float  # CPUs busy with anything but the tool (and this script) during the run
    note: str = ""


def registry_path(image: str) -> tuple[str, str]:
    """``quay.io/crio-test/NAME:TAG`` → (``crio-test/NAME``, ``TAG``) as registries.conf maps it."""
    if not image.startswith(PUBLIC_PREFIX):
        raise SystemExit(f"{image}: only {PUBLIC_PREFIX}* images are served by the local registry")
    name, _, tag = image.removeprefix(PUBLIC_PREFIX).partition(":")
    return REGISTRY_PREFIX + name, tag or "latest"


def _self_cpu() -> float:
    times = os.times()
    return times.user + times.system


def crio_run(daemon: CrioDaemon, image: str, quiet: float) -> tuple[Run, str]:
    """Fresh store, fresh daemon, then time PullImage alone; return the run and the image ID."""
    daemon.stop()
    daemon.wipe_store()
    drop_dirty_pages()
    daemon.start()
    client = daemon.client
    before = wait_for_quiet(quiet)
    daemon_cpu, self_cpu = process_cpu_seconds(daemon.pid), _self_cpu()
    with BusyMeter() as meter, RssSampler(daemon.pid) as sampler:
        started = time.monotonic()
        image_id = client.pull(image)
        seconds = time.monotonic() - started
    own = process_cpu_seconds(daemon.pid) - daemon_cpu + _self_cpu() - self_cpu
    hwm = status_kib(daemon.pid, "VmHWM")
    note = f"VmHWM {hwm / 1024:.0f} MiB, {own:.1f} CPU-s"
    return Run("crio", seconds, sampler.peak_kib, before, meter.others(own), note), image_id


def skopeo_run(scratch: Path, repo: str, tag: str, image: str, quiet: float) -> Run:
    """``skopeo copy`` into a fresh overlay store under ``scratch``; the whole process is timed."""
    store = scratch / "skopeo"
    remove_tree(store)
    graph, run = store / "graph", store / "run"
    graph.mkdir(parents=True)
    run.mkdir()
    drop_dirty_pages()
    before = wait_for_quiet(quiet)
    self_cpu = _self_cpu()
    tools = ContainersTools(scratch / "skopeo-config")  # nothing of the host's /etc/containers applies
    argv = tools.skopeo_argv(
        "copy",
        "--src-tls-verify=false",
        f"docker://{registry.REGISTRY}/{repo}:{tag}",
        f"containers-storage:[overlay@{graph}+{run}]{image}",
    )
    with BusyMeter() as meter:
        measured = run_measured(argv, env=tools.env())
    if measured.returncode != 0:
        raise RuntimeError(f"skopeo copy failed ({measured.returncode}):\n{measured.output}")
    remove_tree(store)  # unmounts graph/overlay if skopeo left its private bind mount
    own = measured.cpu_seconds + _self_cpu() - self_cpu
    note = f"{measured.cpu_seconds:.1f} CPU-s"
    return Run("skopeo", measured.seconds, measured.maxrss_kib, before, meter.others(own), note)


def tar_run(scratch: Path, blobs: list[Path], quiet: float) -> Run:
    """GNU ``tar -xzf`` of every layer blob, in order, into one fresh directory."""
    target = scratch / "tar"
    remove_tree(target)
    target.mkdir(parents=True)
    drop_dirty_pages()
    before = wait_for_quiet(quiet)
    self_cpu = _self_cpu()
    total, cpu = 0.0, 0.0
    with BusyMeter() as meter:
        for blob in blobs:
            measured = run_measured(["tar", "-xzf", str(blob), "-C", str(target)])
            if measured.returncode != 0:
                raise RuntimeError(f"tar -xzf {blob} failed:\n{measured.output}")
            total += measured.seconds
            cpu += measured.cpu_seconds
    remove_tree(target)
    own = cpu + _self_cpu() - self_cpu
    return Run(TAR_SERIAL, total, 0, before, meter.others(own), f"{cpu:.1f} CPU-s")


def tar_parallel_run(scratch: Path, blobs: list[Path], quiet: float) -> Run:
    """One GNU ``tar -xzf`` per layer blob, all at once, each into its own fresh directory (wall time)."""
    target = scratch / "tar"
    remove_tree(target)
    dirs = [target / str(i) for i in range(len(blobs))]
    for directory in dirs:
        directory.mkdir(parents=True)
    drop_dirty_pages()
    before = wait_for_quiet(quiet)
    self_cpu = _self_cpu()
    with BusyMeter() as meter, ThreadPoolExecutor(len(blobs)) as pool:
        started = time.monotonic()
        results = list(
            pool.map(
                lambda job: run_measured(["tar", "-xzf", str(job[0]), "-C", str(job[1])]),
                zip(blobs, dirs, strict=True),
            )
        )
        seconds = time.monotonic() - started
    failed = [r.output for r in results if r.returncode != 0]
    if failed:
        raise RuntimeError(f"parallel tar -xzf failed:\n{failed[0]}")
    remove_tree(target)
    cpu = sum(r.cpu_seconds for r in results)
    own = cpu + _self_cpu() - self_cpu
    return Run(TAR_PARALLEL, seconds, 0, before, meter.others(own), f"{cpu:.1f} CPU-s")


def store_diff_bytes(root: Path, image_id: str) -> int:
    """Sum of ``diff-size`` over the layer chain of ``image_id`` in an overlay store's JSON records."""
    images = json.loads((root / "overlay-images" / "images.json").read_text())
    layers = {rec["id"]: rec for rec in json.loads((root / "overlay-layers" / "layers.json").read_text())}
    top = next(img["layer"] for img in images if img["id"] == image_id)
    total = 0
    while top:
        total += int(layers[top].get("diff-size", 0))
        top = layers[top].get("parent", "")
    return total


def gunzipped_bytes(blobs: list[Path]) -> int:
    """Uncompressed size of gzip blobs, computed by streaming (a cross-check of the store's numbers)."""
    total = 0
    for blob in blobs:
        inflater = zlib.decompressobj(47)  # gzip or zlib header
        with open(blob, "rb") as handle:
            while chunk := handle.read(1 << 20):
                total += len(inflater.decompress(chunk))
        total += len(inflater.flush())
    return total


def summary_rows(runs: list[Run], uncompressed: int) -> list[list[str]]:
    """One row per tool: runs, median/min/max seconds, MB/s at the median, peak RSS (median and max)."""
    rows = []
    for tool in TOOLS:
        mine = [r for r in runs if r.tool == tool]
        if not mine:
            continue
        times = [r.seconds for r in mine]
        rss = [r.peak_rss_kib / 1024 for r in mine if r.peak_rss_kib]
        rows.append(
            [
                tool,
                str(len(mine)),
                f"{median(times):.2f}",
                f"{min(times):.2f}",
                f"{max(times):.2f}",
                f"{uncompressed / MB / median(times):.1f}",
                f"{median(rss):.0f}" if rss else "-",
                f"{max(rss):.0f}" if rss else "-",
            ]
        )
    return rows


def per_run_rows(runs: list[Run], per_round: int) -> list[list[str]]:
    """One row per run: round, tool, seconds, peak RSS, other CPU load before and during, note."""
    return [
        [
            str(i // per_round + 1),
            r.tool,
            f"{r.seconds:.2f}",
            f"{r.peak_rss_kib / 1024:.0f}" if r.peak_rss_kib else "-",
            f"{r.before:.2f}",
            f"{r.others:.2f}",
            r.note or "-",
        ]
        for i, r in enumerate(runs)
    ]


def main() -> None:
    """Run the rounds and print the per-run and summary tables."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=5, help="runs of each tool (default 5)")
    parser.add_argument("--image", default=DEFAULT_IMAGE, help=f"image to pull (default {DEFAULT_IMAGE})")
    parser.add_argument("--no-tar", action="store_true", help="skip the tar -xzf floor")
    add_quiet_argument(parser, "each run")
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory")
    args = parser.parse_args()
    if shutil.which("skopeo") is None:
        raise SystemExit("skopeo is not installed (apt-get install skopeo)")
    registry.ensure_running()
    repo, tag = registry_path(args.image)
    if not registry.has_image(repo, tag):
        raise SystemExit(f"{registry.REGISTRY}/{repo}:{tag} is missing: run hack/images/build.sh")
    layers = registry.layers_of(repo, tag)
    blobs = registry.fetch_blobs(repo, layers)  # also warms the registry's blob files into the page cache
    compressed = sum(layer.size for layer in layers)
    print(f"machine: {machine_state()}")
    print(f"crio: {crio_source()}")
    print(f"image: {args.image} ({len(layers)} layers, {compressed / MB:.1f} MB compressed)")

    scratch = scratch_dir("pull")
    daemon = CrioDaemon(scratch / "crio")
    runs: list[Run] = []
    uncompressed = 0
    try:
        for index in range(args.runs):
            run, image_id = crio_run(daemon, args.image, args.quiet)
            if not uncompressed:
                uncompressed = store_diff_bytes(daemon.root, image_id)
            runs.append(run)
            print(f"  round {index + 1}: crio {run.seconds:.2f}s", end="", flush=True)
            runs.append(skopeo_run(scratch, repo, tag, args.image, args.quiet))
            print(f", skopeo {runs[-1].seconds:.2f}s", end="", flush=True)
            if not args.no_tar:
                runs.append(tar_run(scratch, blobs, args.quiet))
                runs.append(tar_parallel_run(scratch, blobs, args.quiet))
                print(f", tar {runs[-2].seconds:.2f}s / {runs[-1].seconds:.2f}s", end="")
            print(flush=True)
    finally:
        daemon.stop()
        if args.keep:
            print(f"kept {scratch}")
        else:
            daemon.wipe_store()
            remove_tree(scratch)

    computed = gunzipped_bytes(blobs)
    print(
        f"uncompressed: {uncompressed / MB:.1f} MB (crio layers.json diff-size sum); gunzip of the blobs: "
        f"{computed / MB:.1f} MB"
    )
    print(f"machine after: {machine_state()}")
    print_table(
        f"Per run: {args.image} (other CPUs = CPUs kept busy by other processes, before / during the run)",
        ["#", "tool", "seconds", "peak RSS MiB", "other CPUs before", "other CPUs during", "note"],
        per_run_rows(runs, 2 if args.no_tar else 4),
    )
    print_table(
        f"Pull + unpack of {args.image}: {uncompressed / MB:.0f} MB uncompressed, "
        f"{compressed / MB:.0f} MB gzip",
        ["tool", "runs", "median s", "min s", "max s", "MB/s", "peak RSS MiB (median)", "peak RSS MiB (max)"],
        summary_rows(runs, uncompressed),
    )
    crio_times = [r.seconds for r in runs if r.tool == "crio"]
    skopeo_times = [r.seconds for r in runs if r.tool == "skopeo"]
    ratio = median(crio_times) / median(skopeo_times)
    paired = median([c / k for c, k in zip(crio_times, skopeo_times, strict=True)])
    verdict = "meets" if ratio <= TARGET_RATIO else "MISSES"
    print(
        f"\ncrio/skopeo: {ratio:.2f}x (medians), {paired:.2f}x (median of the {len(crio_times)} per-round "
        f"ratios) — {verdict} the target <= {TARGET_RATIO:.2f}x (aim {AIM_RATIO:.2f}x)"
    )


if __name__ == "__main__":
    main()
