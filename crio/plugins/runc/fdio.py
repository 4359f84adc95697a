"""Non-blocking file-descriptor I/O on the event loop for streamed stdio (pipes and pseudo-terminals).

Reads try the descriptor first and wait for readiness only when it is empty, so a busy pipe costs one
``read(2)`` per chunk. A terminal master answers EIO once every slave side is closed: that is its end of file.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import os

CHUNK = 256 * 1024
F_SETPIPE_SZ = 1031  # fcntl command (linux/fcntl.h): resize a pipe's buffer
PIPE_SIZE = 1024 * 1024  # what an exec's output pipes are grown to (fewer wake-ups for bulk output)


def grow_pipe(fd: int, size: int = PIPE_SIZE) -> None:
    """Enlarge a pipe's kernel buffer (best effort: the per-user pipe limit may refuse it)."""
    with contextlib.suppress(OSError):
        fcntl.fcntl(fd, F_SETPIPE_SZ, size)


async def _wait(fds: list[int], writable: bool) -> None:
    loop = asyncio.get_running_loop()
    ready: asyncio.Future[None] = loop.create_future()

    def wake() -> None:
        if not ready.done():
            ready.set_result(None)

    add, remove = (loop.add_writer, loop.remove_writer) if writable else (loop.add_reader, loop.remove_reader)
    for fd in fds:
        add(fd, wake)
    try:
        await ready
    finally:
        for fd in fds:
            remove(fd)


def read_now(fd: int, size: int = CHUNK) -> bytes | None:
    """One non-blocking read: the data, ``b""`` at end of file (EIO of a terminal too), None when empty."""
    try:
        return os.read(fd, size)
    except BlockingIOError:
        return None
    except OSError as exc:
        if exc.errno == errno.EIO:
            return b""
        raise


async def read_any(fds: list[tuple[int, int]]) -> tuple[int, bytes]:
    """Read from the first of ``(tag, fd)`` that has data; ``(tag, b"")`` reports that fd's end of file."""
    while True:
        for tag, fd in fds:
            data = read_now(fd)
            if data is not None:
                return tag, data
        await _wait([fd for _, fd in fds], writable=False)


async def write_all(fd: int, data: bytes) -> bool:
    """Write everything, waiting while the descriptor is full; False when the reader has gone (EPIPE, EIO)."""
    view = memoryview(data)
    while view:
        try:
            written = os.write(fd, view)
        except BlockingIOError:
            await _wait([fd], writable=True)
            continue
        except OSError as exc:
            if exc.errno in (errno.EPIPE, errno.EIO, errno.EBADF):
                return False
            raise
        view = view[written:]
    return True
