"""Helpers shared by the transports: the blob size guard, deadlines and file streaming off the loop."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Awaitable
from typing import TypeVar

from crio.core.errors import DeadlineExceeded, InvalidArgument, NotFound

CHUNK_SIZE = 1024 * 1024

T = TypeVar("T")


async def guard_size(chunks: AsyncIterator[bytes], digest: str, size: int) -> AsyncIterator[bytes]:
    """Pass ``chunks`` through, refusing to yield more than ``size`` bytes in total (``size`` < 0: no limit).

    Raises :class:`InvalidArgument` "blob larger than its descriptor" before the excess is yielded.
    """
    total = 0
    try:
        async for chunk in chunks:
            total += len(chunk)
            if 0 <= size < total:
                raise InvalidArgument(f"blob {digest} larger than its descriptor ({size} bytes)")
            yield chunk
    finally:
        close = getattr(chunks, "aclose", None)
        if close is not None:
            await close()


def deadline_after(timeout: float | None) -> float | None:
    """The event-loop time ``timeout`` seconds from now (None: no deadline)."""
    return None if timeout is None else asyncio.get_running_loop().time() + max(timeout, 0.0)


async def before_deadline(awaitable: Awaitable[T], deadline: float | None, what: str) -> T:
    """Await ``awaitable`` but give up at ``deadline`` with :class:`DeadlineExceeded` naming ``what``."""
    try:
        async with asyncio.timeout_at(deadline):
            return await awaitable
    except TimeoutError:
        raise DeadlineExceeded(f"{what}: deadline exceeded") from None


def _read_at(path: str, offset: int, length: int) -> bytes:
    with open(path, "rb") as handle:
        handle.seek(offset)
        return handle.read(length)


def read_small(path: str, limit: int, what: str, offset: int = 0, length: int = -1) -> bytes:
    """Read a whole (small) file or file region, refusing more than ``limit`` bytes. Blocking.

    Raises :class:`NotFound` when the file is absent and :class:`InvalidArgument` when it is too large.
    """
    try:
        size = os.stat(path).st_size - offset if length < 0 else length
        if size > limit:
            raise InvalidArgument(f"{what} too large: {size} bytes (limit {limit})")
        return _read_at(path, offset, size)
    except FileNotFoundError:
        raise NotFound(f"{what} not found ({path})") from None
    except IsADirectoryError:
        raise InvalidArgument(f"{what}: {path} is a directory") from None


async def stream_file(path: str, offset: int, length: int, what: str) -> AsyncIterator[bytes]:
    """Stream ``length`` bytes of ``path`` from ``offset`` in ~1 MiB chunks, each read in a worker thread.

    Raises :class:`NotFound` when the file is absent or shorter than expected (a truncated archive).
    """
    try:
        handle = await asyncio.to_thread(open, path, "rb")
    except FileNotFoundError:
        raise NotFound(f"{what} not found ({path})") from None
    try:
        await asyncio.to_thread(handle.seek, offset)
        left = length
        while left > 0:
            chunk = await asyncio.to_thread(handle.read, min(CHUNK_SIZE, left))
            if not chunk:
                raise NotFound(f"{what}: {path} ends {left} bytes early")
            left -= len(chunk)
            yield chunk
    finally:
        handle.close()
