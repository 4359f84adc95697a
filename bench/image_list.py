"""ListImages and ImageStatus latency with 500 images in the store, idle and while a large pull runs.

The images are 500 distinct one-layer images ``crio-test/bench-list-N:latest`` (N = 0..499, a marker file
each) pushed once to the local registry through the distribution API and kept there (present ones are not
pushed again). ``oci:`` layout pulls cannot be used: crio records no name for them, so they could not be
looked up by tag. A fresh daemon pulls all of them as ``quay.io/crio-test/bench-list-N:latest``, then the
benchmark alternates ListImages (no filter) and ImageStatus (a random one of the 500 tags, not verbose),
``--calls`` of each, one at a time from one client: first idle, then while another thread pulls
``quay.io/crio-test/big:latest`` (``quay.io/crio-test/multilayer:latest`` when big is not in the registry).
Latency is client-side wall time of the blocking RPC, after a short warm-up.

Run: ``.venv/bin/python -m bench.image_list [--images 500] [--calls 300]``
"""

from __future__ import annotations

import argparse
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import grpc
import httpx

from bench import registry
from bench.common import (
    CriClient,
    CrioDaemon,
    OthersMeter,
    add_quiet_argument,
    crio_source,
    machine_state,
    percentile,
    print_table,
    remove_tree,
    scratch_dir,
    wait_for_quiet,
)

LIST_REPO = "crio-test/bench-list-{}"
PUBLIC_NAME = "quay.io/crio-test/bench-list-{}:latest"
BIG = ("crio-test/big", "quay.io/crio-test/big:latest")
FALLBACK = ("crio-test/multilayer", "quay.io/crio-test/multilayer:latest")
TARGET_P99_MS = 10.0
WARMUP_CALLS = 10
PULL_WORKERS = 4


def ensure_pushed(count: int) -> str:
    """Push the missing ``bench-list-N`` images; describe what was done."""
    with httpx.Client(timeout=30) as client:
        missing = [i for i in range(count) if not registry.has_image(LIST_REPO.format(i), "latest", client)]
        started = time.monotonic()
        for i in missing:
            image = registry.tiny_image(f"crio-bench-list-{i}")
            registry.push_tiny_image(client, LIST_REPO.format(i), "latest", image)
        seconds = time.monotonic() - started
    if not missing:
        return f"all {count} bench-list images already in the registry"
    each_ms = seconds / len(missing) * 1000
    return f"pushed {len(missing)} bench-list images in {seconds:.1f}s ({each_ms:.0f} ms each)"


def populate(daemon: CrioDaemon, count: int) -> float:
    """PullImage every bench-list image (a few at a time); return the seconds it took."""
    started = time.monotonic()
    with ThreadPoolExecutor(PULL_WORKERS) as pool:
        list(pool.map(lambda i: daemon.client.pull(PUBLIC_NAME.format(i)), range(count)))
    return time.monotonic() - started


@dataclass
class Latencies:
    """Latencies (seconds) of the counted calls of one phase."""

    list_images: list[float] = field(default_factory=list)
    image_status: list[float] = field(default_factory=list)
    discarded: int = 0  # calls not entirely inside a pull (busy phase only)
    failures: list[str] = field(default_factory=list)  # errors of calls that overlapped a RemoveImage
    before: float = 0.0  # CPUs busy machine-wide just before the phase
    others: float = 0.0  # CPUs busy with anything but crio and this script during the phase


class BackgroundPuller(threading.Thread):
    """Pulls one image on its own connection, again and again (RemoveImage in between) until stopped.

    ``generation`` is odd while a pull runs and even otherwise, so a caller can tell whether a call it
    made ran entirely inside one pull.
    """

    def __init__(self, socket: str, image: str) -> None:
        super().__init__(name="background-pull", daemon=True)
        self.client = CriClient(socket)
        self.image = image
        self.generation = 0
        self.pull_seconds: list[float] = []
        self.error: BaseException | None = None
        self._stop_event = threading.Event()

    def run(self) -> None:
        try:
            while not self._stop_event.is_set():
                started = time.monotonic()
                self.generation += 1
                self.client.pull(self.image)
                self.generation += 1
                self.pull_seconds.append(time.monotonic() - started)
                if not self._stop_event.is_set():
                    self.client.remove_image(self.image)
        except BaseException as exc:  # reported by the caller
            self.error = exc
        finally:
            self.client.close()

    def running(self) -> int:
        """The current pull's generation, or 0 between pulls."""
        generation = self.generation
        return generation if generation % 2 else 0

    def stop(self) -> None:
        """Finish the current pull and stop."""
        self._stop_event.set()
        self.join()


def measure(
    client: CriClient, count: int, calls: int, rng: random.Random, puller: BackgroundPuller | None = None
) -> Latencies:
    """Alternate ListImages and ImageStatus until ``calls`` of each are counted; check every answer.

    With ``puller``, only calls that start and end inside the same pull are counted.
    """
    result = Latencies()
    deadline = time.monotonic() + 1200
    while len(result.list_images) < calls or len(result.image_status) < calls:
        if time.monotonic() > deadline:
            raise RuntimeError("the measurement did not finish within 20 minutes")
        if puller is not None and puller.error is not None:
            raise RuntimeError(f"background pull of {puller.image} failed: {puller.error}")
        for kind in ("list", "status"):
            generation = puller.running() if puller is not None else 1
            if not generation:
                time.sleep(0.01)  # between pulls (RemoveImage): wait for the next one
                continue
            started = time.monotonic()
            try:
                one_call(client, kind, PUBLIC_NAME.format(rng.randrange(count)), count)
            except grpc.RpcError as exc:
                if puller is None or puller.running() == generation:
                    raise
                # The call overlapped the RemoveImage between two pulls: a failure there is a finding.
                result.failures.append(f"{kind}: {exc.code().name}: {exc.details()}")
            seconds = time.monotonic() - started
            if puller is not None and puller.running() != generation:
                result.discarded += 1
                continue
            target = result.list_images if kind == "list" else result.image_status
            if len(target) < calls:
                target.append(seconds)
    return result


def one_call(client: CriClient, kind: str, name: str, count: int) -> None:
    """One ListImages (``kind`` "list") or ImageStatus of ``name``, with its answer checked."""
    if kind == "list":
        listed = client.list_images()
        if len(listed) < count:
            raise RuntimeError(f"ListImages returned {len(listed)} images, expected at least {count}")
    else:
        found = client.image_status(name)
        if found is None or name not in found.repo_tags:
            raise RuntimeError(f"ImageStatus {name}: not found")


def warm_up(client: CriClient, count: int) -> None:
    """A few calls of each kind, not counted (connection set-up, first-call caches)."""
    for i in range(WARMUP_CALLS):
        client.list_images()
        client.image_status(PUBLIC_NAME.format(i % count))


def rows_for(phase: str, latencies: Latencies) -> list[list[str]]:
    """Table rows (ms) for both RPCs of one phase."""
    rows = []
    for rpc, values in (("ListImages", latencies.list_images), ("ImageStatus", latencies.image_status)):
        ms = [v * 1000 for v in values]
        p99 = percentile(ms, 99)
        rows.append(
            [
                phase,
                rpc,
                f"{latencies.before:.2f} / {latencies.others:.2f}",
                str(len(ms)),
                f"{percentile(ms, 50):.2f}",
                f"{p99:.2f}",
                f"{max(ms):.2f}",
                "yes" if p99 < TARGET_P99_MS else "NO",
            ]
        )
    return rows


def main() -> None:
    """Build the store, measure idle and under a pull, print the table."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--images", type=int, default=500, help="images in the store (default 500)")
    parser.add_argument("--calls", type=int, default=300, help="calls of each RPC per phase (default 300)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the random ImageStatus choices")
    add_quiet_argument(parser, "each phase")
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory")
    args = parser.parse_args()
    registry.ensure_running()
    print(f"machine: {machine_state()}")
    print(f"crio: {crio_source()}")
    print(ensure_pushed(args.images))
    repo, big = BIG
    if not registry.has_image(repo, "latest"):
        repo, big = FALLBACK
        print(f"NOTE: {BIG[1]} is not in the registry (hack/images/build.sh --big); pulling {big} instead")

    rng = random.Random(args.seed)
    scratch = scratch_dir("image-list")
    daemon = CrioDaemon(scratch / "crio")
    try:
        daemon.start()
        seconds = populate(daemon, args.images)
        total = len(daemon.client.list_images())
        print(
            f"crio pulled {args.images} images in {seconds:.1f}s ({PULL_WORKERS} at a time); store: {total}"
        )
        client = CriClient(daemon.socket)
        warm_up(client, args.images)
        before = wait_for_quiet(args.quiet)
        with OthersMeter(daemon.pid) as meter:
            idle = measure(client, args.images, args.calls, rng)
        idle.before, idle.others = before, meter.others

        before = wait_for_quiet(args.quiet)
        with OthersMeter(daemon.pid) as meter:
            puller = BackgroundPuller(daemon.socket, big)
            puller.start()
            busy = measure(client, args.images, args.calls, rng, puller)
            puller.stop()
        busy.before, busy.others = before, meter.others
        client.close()
        if puller.error is not None:
            raise RuntimeError(f"background pull of {big} failed: {puller.error}")
        pulls = ", ".join(f"{s:.1f}" for s in puller.pull_seconds)
        print(
            f"background pulls of {big} (each on an empty store, RemoveImage in between): "
            f"{len(puller.pull_seconds)} [{pulls} s]; {busy.discarded} calls not counted (not inside a pull)"
        )
        if busy.failures:
            print(
                f"FAILED calls that overlapped a RemoveImage: {len(busy.failures)}, e.g. {busy.failures[0]}"
            )
    finally:
        daemon.stop()
        if args.keep:
            print(f"kept {scratch}")
        else:
            daemon.wipe_store()
            remove_tree(scratch)
    print(f"machine after: {machine_state()}")
    print_table(
        f"ListImages / ImageStatus latency, {total} images in the store (ms, client side)",
        [
            "phase",
            "RPC",
            "other CPUs before / during",
            "calls",
            "p50 ms",
            "p99 ms",
            "max ms",
            f"p99 < {TARGET_P99_MS:.0f} ms",
        ],
        rows_for("idle", idle) + rows_for(f"during pull of {big.rsplit('/', 1)[1]}", busy),
    )


if __name__ == "__main__":
    main()
