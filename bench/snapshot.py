"""Freeze the working tree's ``crio`` package for a benchmark run while others keep editing it.

Copies ``crio/`` (without caches) into a new directory, checks that the daemon and its built-in plugins
import from there, and prints the ``CRIO_BENCH_SRC=...`` assignment bench.common's daemons honour
(``PYTHONPATH`` wins over the editable install, so the daemon runs the frozen copy).

Run: ``eval "$(.venv/bin/python -m bench.snapshot)"`` (exit code 1, nothing on stdout, when the tree does not
import right now); ``--wait SECONDS`` retries every 10 s until it does.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from bench.common import REPO, SRC_ENV

MODULES = ("crio.core.daemon", "crio.core.cli", "crio.plugins.runc", "crio.plugins.cni")


def snapshot() -> tuple[Path | None, str]:
    """Copy the package and try importing it; (directory, "") on success, (None, the error) otherwise."""
    target = Path(tempfile.mkdtemp(prefix="crio-bench-src-", dir=os.environ.get("CRIO_BENCH_TMP")))
    shutil.copytree(REPO / "crio", target / "crio", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    probe = subprocess.run(
        [sys.executable, "-c", f"import {', '.join(MODULES)}"],
        env={**os.environ, "PYTHONPATH": str(target)},
        cwd="/",
        capture_output=True,
        text=True,
    )
    if probe.returncode != 0:
        shutil.rmtree(target)
        return None, (probe.stderr.strip().splitlines() or ["import failed"])[-1]
    return target, ""


def main(argv: Sequence[str] | None = None) -> int:
    """Print ``CRIO_BENCH_SRC=DIR`` for a frozen, importable copy, or explain why there is none."""
    parser = argparse.ArgumentParser(prog="python -m bench.snapshot", description=__doc__.split("\n")[0])
    parser.add_argument("--wait", type=float, default=0.0, help="keep trying for this many seconds")
    args = parser.parse_args(argv)
    deadline = time.monotonic() + args.wait
    while True:
        target, error = snapshot()
        if target is not None:
            print(f"export {SRC_ENV}={target}")
            return 0
        print(f"working tree does not import: {error}", file=sys.stderr)
        if time.monotonic() >= deadline:
            return 1
        time.sleep(10)


if __name__ == "__main__":
    raise SystemExit(main())
