"""Pulls of the hostile image corpus (issue 14): what each answers, how long it takes, what memory it costs.

A fresh daemon on a private store pulls every image of ``tests/hostile_images.py`` from the fake registry
of ``tests/integration/fake_registry.py`` (a real HTTP registry in this process, on 127.0.0.1), one after
the other. Before each pull the daemon's RSS high-water mark is reset (``/proc/PID/clear_refs``); after it,
growth = VmHWM - VmRSS before. The layer-extraction child (layers over 16 MiB) is sampled every 20 ms.
After each pull: does Version still answer, and is the store as before (layers.json, images, layer
directories, temporary pull files)? Target: every image refused with INVALID_ARGUMENT, growth < 256 MB.

Run: ``.venv/bin/python -m bench.hostile_pull [--only NAME,NAME]``
"""

from __future__ import annotations

import argparse
import json
import re
import time

import grpc

from bench.common import MB, REGISTRIES_CONF, CrioDaemon, crio_source, print_table, remove_tree, scratch_dir
from tests import hostile_images as h
from tests.integration.fake_registry import FakeRegistry

TARGET_BYTES = 256 * MB
EXCERPT = 110


def store_state(daemon: CrioDaemon) -> tuple[object, ...]:
    """What a failed pull must not change: layer records, image records, layer directories, temp files."""
    layers_json = daemon.root / "overlay-layers" / "layers.json"
    layers = (
        sorted(r["id"] for r in json.loads(layers_json.read_text() or "[]")) if layers_json.exists() else []
    )
    images = sorted(i.id for i in daemon.client.list_images())
    overlay = daemon.root / "overlay"
    dirs = sorted(p.name for p in overlay.iterdir()) if overlay.exists() else []
    tmp = daemon.root / "tmp"
    pulls = sorted(p.name for p in tmp.glob("pull-*")) if tmp.exists() else []
    return layers, images, dirs, pulls


def excerpt(message: str) -> str:
    """The message without the image (and layer) name prefix, cut short, safe for a Markdown cell."""
    text = re.sub(r"^fake\.test/\S+: (layer sha256:[0-9a-f]{64}: )?", "", message)
    text = re.sub(r"'([^']{20})[^']{4,}'(\.\.\. \(\d+ bytes\))?", r"'\1...'", text)  # long names
    text = text.replace("|", "/").replace("\n", " ")
    return text if len(text) <= EXCERPT else text[: EXCERPT - 3] + "..."


def main() -> None:
    """Pull every corpus image and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="", help="comma-separated case names (default: all)")
    args = parser.parse_args()
    wanted = {name for name in args.only.split(",") if name}
    cases = [case for case in h.corpus() if not wanted or case.name in wanted]
    base = scratch_dir("hostile")
    rows = []
    worst = 0
    failures = 0
    with FakeRegistry() as registry:
        h.serve(registry, cases)
        conf = base / "registries.conf"
        conf.write_text(
            REGISTRIES_CONF.read_text() + f'\n[[registry]]\nprefix = "fake.test"\n'
            f'location = "127.0.0.1:{registry.port}"\ninsecure = true\n'
        )
        with CrioDaemon(base) as daemon:
            daemon.config_file.write_text(
                daemon.config_file.read_text().replace(str(REGISTRIES_CONF), str(conf))
            )
            daemon.start()
            print(f"crio: {crio_source()}")
            for case in cases:
                case.image  # noqa: B018 - built before the measurement (the registry runs in this process)
                before = store_state(daemon)
                started = time.monotonic()
                with h.PeakRss(daemon.pid) as rss:
                    try:
                        daemon.client.pull(f"fake.test/hostile/{case.name}:latest", timeout=900)
                        code, message = "OK (pulled!)", ""
                    except grpc.RpcError as exc:
                        code, message = exc.code().name, exc.details() or ""
                seconds = time.monotonic() - started
                try:
                    daemon.client.version(timeout=10)
                    serving = "yes"
                except grpc.RpcError:
                    serving = "NO"
                clean = "yes" if store_state(daemon) == before else "NO"
                ok = code == "INVALID_ARGUMENT" and case.expect in message and serving == clean == "yes"
                failures += not ok
                growth = rss.growth_kib * 1024
                worst = max(worst, growth, rss.children_peak_kib * 1024)
                rows.append(
                    (
                        case.name,
                        code if ok else f"{code} (UNEXPECTED)",
                        excerpt(message),
                        f"{seconds:.1f}",
                        f"{growth / MB:.0f}",
                        f"{rss.children_peak_kib * 1024 / MB:.0f}" if rss.children_peak_kib else "-",
                        serving,
                        clean,
                    )
                )
    remove_tree(base)
    print_table(
        "Hostile image pulls (one daemon, in order)",
        (
            "image",
            "status",
            "message (image name cut)",
            "s",
            "daemon RSS +MB",
            "child MB",
            "serving",
            "clean",
        ),
        rows,
    )
    verdict = "met" if worst < TARGET_BYTES and not failures else "NOT met"
    print(
        f"\nTarget (every image INVALID_ARGUMENT naming the problem, daemon serving, store clean, peak RSS"
        f" growth < {TARGET_BYTES // MB} MB): {verdict}; worst {worst / MB:.0f} MB, {failures} unexpected."
    )


if __name__ == "__main__":
    main()
