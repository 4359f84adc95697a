"""Byte transports under the streaming protocols, with backpressure both ways and an idle clock.

:class:`TcpChannel` is the upgraded HTTP connection. :class:`InboundBuffer` holds what a client sent on one
stream until the relay takes it; while it is over its limit the connection's read loop waits, so a client
that sends faster than the process reads is slowed down by TCP instead of growing the daemon's memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque

READ_CHUNK = 256 * 1024
WRITE_HIGH_WATER = 512 * 1024  # the transport's buffer above which writers wait (drain)
INBOUND_LIMIT = 256 * 1024  # per stream


class TcpChannel:
    """One client connection after the HTTP upgrade."""

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, initial: bytes = b""
    ) -> None:
        self.reader = reader
        self.writer = writer
        self._initial = initial
        self.last_activity = time.monotonic()
        self.closed = False
        self.idle_for = 0.0  # set when the idle timeout ends the connection
        self._reading = False
        self._ended = asyncio.Event()  # the client's end of stream was read
        writer.transport.set_write_buffer_limits(high=WRITE_HIGH_WATER)

    def push_back(self, data: bytes) -> None:
        """Make ``data`` (read too early, e.g. after an HTTP head) the next thing :meth:`read` returns."""
        self._initial = data + self._initial

    async def read(self) -> bytes:
        """The next bytes from the client; b"" at end of stream. One reader at a time (the session's loop)."""
        if self._initial:
            data, self._initial = self._initial, b""
            return data
        if self._ended.is_set():
            return b""
        self._reading = True
        try:
            data = await self.reader.read(READ_CHUNK)
        except (ConnectionError, OSError):
            data = b""
        finally:
            self._reading = False
        if not data:
            self._ended.set()
        self.last_activity = time.monotonic()
        return data

    def write(self, buffers: list[bytes]) -> None:
        """Queue bytes for the client (a closed connection drops them)."""
        if self.closed or self.writer.is_closing():
            return
        for buffer in buffers:
            self.writer.write(buffer)
        if buffers:
            self.last_activity = time.monotonic()

    async def drain(self) -> None:
        """Wait while the transport's buffer is above its high-water mark; raises ConnectionError if gone."""
        if self.closed or self.writer.is_closing():
            raise ConnectionResetError("connection closed")
        await self.writer.drain()

    async def end_output(self, timeout: float) -> None:
        """Flush what is queued (at most ``timeout`` s) and end our direction (TCP FIN)."""
        if self.writer.is_closing():
            return
        with contextlib.suppress(ConnectionError, OSError, TimeoutError):
            await asyncio.wait_for(self.writer.drain(), timeout)
            if self.writer.can_write_eof():
                self.writer.write_eof()

    async def wait_client_end(self, timeout: float) -> None:
        """Wait (at most ``timeout`` s) until the read loop saw the client's end of stream."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._ended.wait(), timeout)

    async def close(self, linger: float = 0.0) -> None:
        """Close; with ``linger``, first flush, end our side and read (dropping it) until the client closes.

        Reading the client's remaining input first keeps the close from turning into a reset, which could
        destroy output the client has not read yet. Only for a connection no read loop is using any more.
        """
        if self.closed:
            return
        try:
            if linger > 0:
                await self.end_output(linger)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._discard_input(), linger)
        finally:
            self.closed = True
            self.writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await self.writer.wait_closed()

    async def _discard_input(self) -> None:
        while await self.read():
            pass

    def abort(self) -> None:
        """Drop the connection at once."""
        self.closed = True
        self.writer.transport.abort()


class InboundBuffer:
    """Bytes a client sent on one stream, waiting for the relay; bounded by ``limit`` (see module doc)."""

    def __init__(self, limit: int = INBOUND_LIMIT) -> None:
        self.limit = limit
        self._chunks: deque[bytes] = deque()
        self.size = 0
        self.eof = False
        self.discarding = False
        self._changed = asyncio.Event()

    @property
    def full(self) -> bool:
        """Over the limit: the connection should stop reading."""
        return self.size >= self.limit and not self.eof

    def feed(self, data: bytes) -> None:
        """Add bytes from the client."""
        if data and not self.eof and not self.discarding:
            self._chunks.append(data)
            self.size += len(data)
            self._changed.set()

    def feed_eof(self) -> None:
        """The client will send nothing more (or the stream is gone)."""
        self.eof = True
        self._changed.set()

    def discard(self) -> None:
        """Drop everything sent on this stream from now on (a stream nobody reads)."""
        self.discarding = True
        self._chunks.clear()
        self.size = 0
        self._changed.set()

    async def wait_space(self) -> None:
        """Return once the buffer is below its limit (or ended)."""
        while self.full:
            self._changed.clear()
            await self._changed.wait()

    async def read(self) -> bytes:
        """The next bytes; b"" once the client ended the stream and everything was read."""
        while not self._chunks:
            if self.eof:
                return b""
            self._changed.clear()
            await self._changed.wait()
        data = self._chunks.popleft()
        self.size -= len(data)
        self._changed.set()
        return data
