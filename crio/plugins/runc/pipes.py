"""Reading pipes on the event loop without blocking it (``loop.add_reader`` on non-blocking fds)."""

from __future__ import annotations

import asyncio
import os


async def wait_readable(fd: int) -> None:
    """Return once ``fd`` is readable (data, EOF or error)."""
    loop = asyncio.get_running_loop()
    ready: asyncio.Future[None] = loop.create_future()

    def wake() -> None:
        if not ready.done():
            ready.set_result(None)

    loop.add_reader(fd, wake)
    try:
        await ready
    finally:
        loop.remove_reader(fd)


async def read_line(fd: int, limit: int = 1 << 20) -> bytes:
    """Read until a newline, EOF or ``limit`` bytes; ``fd`` becomes non-blocking and stays open."""
    os.set_blocking(fd, False)
    buffer = bytearray()
    while b"\n" not in buffer and len(buffer) < limit:
        await wait_readable(fd)
        while True:
            try:
                chunk = os.read(fd, 65536)
            except BlockingIOError:
                break
            if not chunk:
                return bytes(buffer)
            buffer += chunk
    return bytes(buffer)


async def read_capped(fd: int, limit: int) -> bytes:
    """Read to EOF keeping the first ``limit`` bytes (the rest is read and dropped); closes ``fd``."""
    os.set_blocking(fd, False)
    kept = bytearray()
    try:
        while True:
            await wait_readable(fd)
            while True:
                try:
                    chunk = os.read(fd, 65536)
                except BlockingIOError:
                    break
                if not chunk:
                    return bytes(kept)
                if len(kept) < limit:
                    kept += chunk[: limit - len(kept)]
    finally:
        os.close(fd)
