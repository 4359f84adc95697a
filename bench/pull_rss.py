"""Peak daemon RSS during the pull of a ~1 GB image (``quay.io/crio-test/big:latest``) into a fresh store.

Each run starts a fresh daemon on an empty store, lets it settle, records its idle VmRSS, then pulls the
image while a thread samples the daemon's VmRSS every 20 ms; at the end it also reads VmHWM (the kernel's
high-water mark over the daemon's whole life, start-up included). Target: peak under 150 MB (10^6 bytes):
the pull streams and never holds a layer in memory.

Run: ``.venv/bin/python -m bench.pull_rss [--runs 3] [--image quay.io/crio-test/big:latest]``
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass

from bench import registry
from bench.common import (
    MB,
    CrioDaemon,
    OthersMeter,
    RssSampler,
    add_quiet_argument,
    crio_source,
    drop_dirty_pages,
    machine_state,
    print_table,
    remove_tree,
    scratch_dir,
    status_kib,
    wait_for_quiet,
)
from bench.pull import registry_path, store_diff_bytes

DEFAULT_IMAGE = "quay.io/crio-test/big:latest"
FALLBACK_IMAGE = "quay.io/crio-test/multilayer:latest"
TARGET_BYTES = 150 * MB
SETTLE_SECONDS = 2.0


@dataclass(frozen=True)
class RssRun:
    """One pull: idle RSS before, sampled peak during, VmHWM after (KiB), duration and unpacked bytes."""

    idle_kib: int
    peak_kib: int
    hwm_kib: int
    samples: int
    seconds: float
    uncompressed: int
    before: float  # CPUs busy machine-wide just before the pull
    others: float  # CPUs busy with anything but crio and this script during the pull


def one_run(daemon: CrioDaemon, image: str, quiet: float) -> RssRun:
    """Fresh store and daemon, settle, then pull ``image`` under the sampler."""
    daemon.stop()
    daemon.wipe_store()
    drop_dirty_pages()
    daemon.start()
    time.sleep(SETTLE_SECONDS)
    before = wait_for_quiet(quiet)
    idle = status_kib(daemon.pid, "VmRSS")
    with OthersMeter(daemon.pid) as meter, RssSampler(daemon.pid) as sampler:
        started = time.monotonic()
        image_id = daemon.client.pull(image)
        seconds = time.monotonic() - started
    hwm = status_kib(daemon.pid, "VmHWM")
    uncompressed = store_diff_bytes(daemon.root, image_id)
    return RssRun(idle, sampler.peak_kib, hwm, sampler.samples, seconds, uncompressed, before, meter.others)


def mib(kib: int) -> str:
    """KiB as MiB with one decimal."""
    return f"{kib / 1024:.1f}"


def main() -> None:
    """Run the pulls and print the table."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=3, help="pulls, each on a fresh store (default 3)")
    parser.add_argument("--image", default=DEFAULT_IMAGE, help=f"image to pull (default {DEFAULT_IMAGE})")
    add_quiet_argument(parser, "each pull")
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory")
    args = parser.parse_args()
    registry.ensure_running()
    image = args.image
    repo, tag = registry_path(image)
    if not registry.has_image(repo, tag):
        print(f"NOTE: {image} is not in the registry (hack/images/build.sh --big); using {FALLBACK_IMAGE}")
        image = FALLBACK_IMAGE
        repo, tag = registry_path(image)
    compressed = sum(layer.size for layer in registry.layers_of(repo, tag))
    print(f"machine: {machine_state()}")
    print(f"crio: {crio_source()}")

    scratch = scratch_dir("pull-rss")
    daemon = CrioDaemon(scratch / "crio")
    runs: list[RssRun] = []
    try:
        for index in range(args.runs):
            runs.append(one_run(daemon, image, args.quiet))
            print(
                f"  run {index + 1}: {runs[-1].seconds:.1f}s, peak {mib(runs[-1].peak_kib)} MiB", flush=True
            )
    finally:
        daemon.stop()
        if args.keep:
            print(f"kept {scratch}")
        else:
            daemon.wipe_store()
            remove_tree(scratch)
    print(f"machine after: {machine_state()}")
    uncompressed = runs[0].uncompressed
    target_mib = TARGET_BYTES / (1 << 20)
    print_table(
        f"Daemon RSS during the pull of {image} ({uncompressed / MB:.0f} MB uncompressed, "
        f"{compressed / MB:.0f} MB compressed), MiB",
        [
            "run",
            "idle RSS",
            "peak RSS (sampled)",
            "VmHWM",
            "samples",
            "pull s",
            "MB/s",
            "other CPUs before / during",
            "peak < 150 MB",
        ],
        [
            [
                str(i + 1),
                mib(r.idle_kib),
                mib(r.peak_kib),
                mib(r.hwm_kib),
                str(r.samples),
                f"{r.seconds:.1f}",
                f"{r.uncompressed / MB / r.seconds:.1f}",
                f"{r.before:.2f} / {r.others:.2f}",
                "yes" if max(r.peak_kib, r.hwm_kib) * 1024 < TARGET_BYTES else "NO",
            ]
            for i, r in enumerate(runs)
        ],
    )
    worst = max(max(r.peak_kib, r.hwm_kib) for r in runs) / 1024
    verdict = "meets" if worst < target_mib else "MISSES"
    print(f"\nworst peak {worst:.1f} MiB — {verdict} the target < 150 MB ({target_mib:.1f} MiB)")


if __name__ == "__main__":
    main()
