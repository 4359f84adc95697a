"""Layer extraction in a child process, so a large pull never holds the daemon's interpreter lock.

The daemon runs ``python -m crio.core.storage.diffworker TARGET FORMAT REPORT_FD`` with the layer blob on
stdin, the tar-split file on stdout and a pipe on REPORT_FD that receives one JSON line: the
:class:`DiffStats`, or the error (its class name and message). The store uses :func:`in_subprocess` as its
``apply_diff``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import select
import signal
import sys
import threading
from dataclasses import asdict
from pathlib import Path
from typing import Any, BinaryIO, Literal

from crio.core import errors, proc
from crio.core.storage.layerdiff import DiffStats, apply_diff
from crio.core.storage.layers import ApplyDiff

# Blobs smaller than this (bytes) are extracted in the daemon itself: starting an interpreter costs more
# than they could hold the interpreter lock.
IN_PROCESS_BELOW = 16 * 1024 * 1024
# Scheduling niceness of the extraction child.
EXTRACTION_NICENESS = 10
# How often a waiting worker thread looks at the cancel flag (seconds).
CANCEL_POLL = 0.1


def main(argv: list[str]) -> int:
    """The child: extract stdin into ``argv[0]`` with format ``argv[1]``; report on fd ``argv[2]``."""
    target, fmt, report_fd = Path(argv[0]), argv[1], int(argv[2])
    os.nice(EXTRACTION_NICENESS)  # the daemon's quick RPCs come first when CPUs are scarce
    with os.fdopen(report_fd, "w") as report:
        try:
            with os.fdopen(0, "rb", closefd=False) as blob, os.fdopen(1, "wb", closefd=False) as tar_split:
                stats = apply_diff(blob, target, fmt, tar_split)  # type: ignore[arg-type]
                tar_split.flush()
        except errors.CrioError as exc:
            report.write(json.dumps({"error": _reported_class(exc), "message": str(exc)}) + "\n")
            return 1
        except OSError as exc:
            report.write(json.dumps({"error": "Internal", "message": f"extracting the layer: {exc}"}) + "\n")
            return 1
        report.write(json.dumps({"stats": asdict(stats)}) + "\n")
    return 0


def _reported_class(exc: errors.CrioError) -> str:
    """The nearest class of ``exc`` that :mod:`crio.core.errors` defines (the one the parent knows)."""
    for cls in type(exc).__mro__:
        if getattr(errors, cls.__name__, None) is cls:
            return str(cls.__name__)
    return "Internal"


def _error(name: str, message: str) -> errors.CrioError:
    cls = getattr(errors, name, None)
    if isinstance(cls, type) and issubclass(cls, errors.CrioError):
        return cls(message)
    return errors.Internal(message)


def in_subprocess(loop: asyncio.AbstractEventLoop) -> ApplyDiff:
    """An ``apply_diff`` for the store that extracts in a child process started on ``loop``.

    It is called from store worker threads; the child is started and reaped through ``crio.core.proc`` on
    the loop thread (the daemon reaps every child centrally) and killed when ``cancel`` is set.
    """

    def apply(
        blob: BinaryIO,
        target: Path,
        fmt: Literal["overlay", "apply"],
        tar_split: BinaryIO,
        cancel: threading.Event | None = None,
    ) -> DiffStats:
        if _size(blob) < IN_PROCESS_BELOW:
            return apply_diff(blob, target, fmt, tar_split, cancel)
        read_end, write_end = os.pipe()
        argv = [sys.executable, "-m", "crio.core.storage.diffworker", str(target), fmt, str(write_end)]

        async def start() -> proc.Spawned:
            return proc.spawn(
                argv, stdin=blob.fileno(), stdout=tar_split.fileno(), stderr=2, pass_fds=(write_end,)
            )

        try:
            spawned = asyncio.run_coroutine_threadsafe(start(), loop).result()
        finally:
            os.close(write_end)
        try:
            report = _read_report(read_end, spawned.pid, cancel)
        finally:
            os.close(read_end)
            asyncio.run_coroutine_threadsafe(_wait(spawned.exited), loop).result()
        if cancel is not None and cancel.is_set():
            raise errors.DeadlineExceeded("pull cancelled")
        if "stats" in report:
            raw: dict[str, Any] = report["stats"]
            return DiffStats(**{**raw, "uids": tuple(raw["uids"]), "gids": tuple(raw["gids"])})
        raise _error(
            str(report.get("error", "Internal")), str(report.get("message", "layer extraction failed"))
        )

    return apply


def _size(blob: BinaryIO) -> int:
    try:
        return os.fstat(blob.fileno()).st_size
    except (OSError, ValueError):  # not a real file: no size known, extract in a child
        return IN_PROCESS_BELOW


def _read_report(read_end: int, pid: int, cancel: threading.Event | None) -> dict[str, Any]:
    chunks: list[bytes] = []
    while True:
        ready, _, _ = select.select([read_end], [], [], CANCEL_POLL)
        if cancel is not None and cancel.is_set():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            return {}
        if not ready:
            continue
        chunk = os.read(read_end, 65536)
        if not chunk:
            break
        chunks.append(chunk)
    text = b"".join(chunks).decode(errors="replace").strip()
    if not text:
        return {"error": "Internal", "message": "the layer extraction process died without a report"}
    parsed: dict[str, Any] = json.loads(text.splitlines()[-1])
    return parsed


async def _wait(exited: asyncio.Future[int]) -> int:
    return await exited


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
