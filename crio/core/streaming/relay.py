"""Relaying an exec'd command or an attached container between its :class:`StdioSession` and the client.

Transport-neutral: the client side is a :class:`CommandStreams` (SPDY streams or WebSocket channels, see
:mod:`crio.core.streaming.cmdstreams`). Output is read from the process only as fast as the client takes it
(every write waits for the connection to drain), so a flood of output to a slow reader holds at most a few
buffers in the daemon. When the client goes away first, the session is closed, which kills an exec'd
command still running.

Ends: an exec ends when the command has exited and its output is drained; an attach ends with the
container's output (it exited) or, as CRI-O does, when the client's stdin ends for a container that is
neither ``stdin_once`` nor a terminal.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from typing import Any, Protocol

from crio.core.types import StdioSession

log = logging.getLogger(__name__)

OUTPUT_IDLE_GRACE = 2.0  # after the command exited: how long output may stay silent before we stop waiting


class CommandStreams(Protocol):
    """The client's side of a remote command."""

    has_stdin: bool
    lost: asyncio.Future[None]  # resolved when the client disconnects

    async def read_stdin(self) -> bytes:
        """The client's next stdin bytes; b"" at its end."""
        ...

    async def read_resize(self) -> tuple[int, int] | None:
        """The next terminal size (width, height); None when there will be no more."""
        ...

    async def write(self, tag: int, data: bytes) -> None:
        """Send output of ``tag`` (STDOUT/STDERR); dropped when the client did not open that stream."""
        ...

    async def finish(self, outcome: bytes) -> None:
        """Write ``outcome`` on the error stream, end every stream and close the connection."""
        ...

    async def abort(self) -> None:
        """Close the connection without an outcome (the client is gone)."""
        ...


class _Output:
    """Pumps the process's output to the client, remembering when it last moved."""

    def __init__(self, session: StdioSession, streams: CommandStreams) -> None:
        self.session = session
        self.streams = streams
        self.last = time.monotonic()

    async def run(self) -> None:
        while True:
            tag, data = await self.session.read()
            if not tag:
                return
            self.last = time.monotonic()
            await self.streams.write(tag, data)
            self.last = time.monotonic()


async def _pump_input(session: StdioSession, streams: CommandStreams) -> None:
    while data := await streams.read_stdin():
        await session.write(data)
    await session.close_stdin()


async def _pump_resizes(session: StdioSession, streams: CommandStreams) -> None:
    while (size := await streams.read_resize()) is not None:
        session.resize(*size)


async def _wait_drained(output: _Output, task: asyncio.Task[None]) -> None:
    """Wait for the output to end, giving up once it stays silent for :data:`OUTPUT_IDLE_GRACE`."""
    while not task.done():
        idle = time.monotonic() - output.last
        if idle >= OUTPUT_IDLE_GRACE:
            log.info("streaming: output still open %.0fs after the command exited; ending", idle)
            return
        await asyncio.wait({task}, timeout=OUTPUT_IDLE_GRACE - idle)


async def _cancel(tasks: Sequence[asyncio.Future[Any]]) -> None:
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task


def _helpers(session: StdioSession, streams: CommandStreams) -> list[asyncio.Task[None]]:
    tasks = [asyncio.ensure_future(_pump_resizes(session, streams))]
    if streams.has_stdin:
        tasks.append(asyncio.ensure_future(_pump_input(session, streams)))
    return tasks


async def relay_exec(session: StdioSession, streams: CommandStreams) -> int | None:
    """Relay an exec'd command until it exits; returns its exit code (None: the client left first)."""
    output = _Output(session, streams)
    out_task = asyncio.ensure_future(output.run())
    helpers = _helpers(session, streams)
    exited = asyncio.ensure_future(session.wait())
    try:
        first: set[asyncio.Future[Any]] = {exited, streams.lost}
        await asyncio.wait(first, return_when=asyncio.FIRST_COMPLETED)
        if not exited.done():
            return None
        drained = asyncio.ensure_future(_wait_drained(output, out_task))
        await asyncio.wait({drained, streams.lost}, return_when=asyncio.FIRST_COMPLETED)
        drained.cancel()
        if streams.lost.done() and not out_task.done():
            return None
        return exited.result()
    finally:
        await _cancel([out_task, *helpers, exited])
        await session.close()


async def relay_attach(session: StdioSession, streams: CommandStreams, ends_with_stdin: bool) -> bool:
    """Relay an attach; True when it ended normally (False: the client left first)."""
    out_task = asyncio.ensure_future(_Output(session, streams).run())
    helpers = _helpers(session, streams)
    watched: set[asyncio.Future[Any]] = {out_task, streams.lost}
    if ends_with_stdin and streams.has_stdin:
        watched.add(helpers[-1])
    try:
        await asyncio.wait(watched, return_when=asyncio.FIRST_COMPLETED)
        return not streams.lost.done()
    finally:
        await _cancel([out_task, *helpers])
        await session.close()
