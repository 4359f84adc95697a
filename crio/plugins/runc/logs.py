"""ReopenContainerLog through conmon: a "2 0 0" line on the bundle's ``ctl`` FIFO, then the reopen seen.

conmon reads control messages ``<type> <height> <width>`` from ``<bundle>/ctl``; type 2 makes it close and
reopen its k8s-file log, which the kubelet relies on after it renamed the file for rotation. conmon 2.1
opens ``<log>.tmp`` and renames it over the log path, so the reopen is observed with inotify on the log
directory (IN_MOVED_TO, or IN_CREATE for a monitor that creates the file in place, of the log's name): the
call returns once the new file is in place, and fails at once when no monitor reads the FIFO.
"""

from __future__ import annotations

import asyncio
import errno
import os
from pathlib import Path

from crio.core import errors
from crio.core.types import ContainerBundle
from crio.plugins.runc import inotify, pipes

REOPEN_TIMEOUT = 10.0
REOPEN_MESSAGE = b"2 0 0\n"


def _write_ctl(ctl: Path, message: bytes) -> None:
    """Write to conmon's control FIFO without ever blocking (no reader: ENXIO)."""
    fd = os.open(ctl, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        os.write(fd, message)
    finally:
        os.close(fd)


async def _wait_for_name(fd: int, name: str) -> None:
    while True:
        await pipes.wait_readable(fd)
        if any(event_name == name for _wd, _mask, event_name in inotify.read_events(fd)):
            return


async def reopen_log(container: ContainerBundle) -> None:
    """Make the container's monitor reopen its CRI log file and wait until it has."""
    if not container.log_path:
        return
    log_path = Path(container.log_path)
    if container.exit_file.exists():
        # The container has exited; its monitor may still hold the FIFO open for a moment, but it will
        # never reopen the log again.
        raise errors.FailedPrecondition(f"container {container.id} has exited; its log is not reopened")
    fd = inotify.init()
    try:
        try:
            inotify.add_watch(fd, log_path.parent, inotify.IN_MOVED_TO | inotify.IN_CREATE)
        except OSError as exc:
            raise errors.FailedPrecondition(f"container {container.id}: log directory: {exc}") from None
        try:
            _write_ctl(container.bundle / "ctl", REOPEN_MESSAGE)
        except OSError as exc:
            if exc.errno in (errno.ENXIO, errno.ENOENT, errno.EPIPE):
                raise errors.FailedPrecondition(
                    f"container {container.id} has no running monitor to reopen its log"
                ) from None
            raise errors.Internal(f"container {container.id}: writing to conmon's ctl: {exc}") from None
        try:
            await asyncio.wait_for(_wait_for_name(fd, log_path.name), REOPEN_TIMEOUT)
        except TimeoutError:
            raise errors.DeadlineExceeded(
                f"container {container.id}: conmon did not reopen {log_path} within {REOPEN_TIMEOUT:g}s"
            ) from None
    finally:
        os.close(fd)
