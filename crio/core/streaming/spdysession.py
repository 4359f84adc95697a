"""A SPDY/3.1 session on asyncio: the sans-IO :mod:`crio.core.streaming.spdy` connection driven over a byte
transport (the upgraded TCP connection, or a WebSocket tunnel), with one :class:`SpdyStream` per stream.

One task runs :meth:`SpdySession.run`, the only reader of the transport. A stream the client opens is
accepted at once (SYN_REPLY) and handed to the ``on_stream`` callback. Received data waits in the stream's
bounded :class:`~crio.core.streaming.channel.InboundBuffer`; while one is full the read loop pauses. Writers
wait for the peer's flow-control window (when it does flow control) and for the transport to drain.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, Protocol

from crio.core.streaming import spdy
from crio.core.streaming.channel import InboundBuffer

log = logging.getLogger(__name__)

WRITE_CHUNK = 256 * 1024
CLOSE_LINGER = 5.0  # how long a closing session waits for the client to close its side


class ByteTransport(Protocol):
    """What a session runs on."""

    @property
    def last_activity(self) -> float:
        """When bytes last moved (monotonic clock)."""
        ...

    async def read(self) -> bytes:
        """The next bytes from the client (b"": end)."""
        ...

    def write(self, buffers: list[bytes]) -> None:
        """Queue bytes for the client."""
        ...

    async def drain(self) -> None:
        """Wait while too much is queued; raises ConnectionError once the connection is gone."""
        ...

    async def end_output(self, timeout: float) -> None:
        """Flush and end our direction."""
        ...

    async def wait_client_end(self, timeout: float) -> None:
        """Wait until the read loop saw the client's end."""
        ...

    async def close(self, linger: float = 0.0) -> None:
        """Close the connection."""
        ...


class StreamClosed(ConnectionError):
    """The stream (or the whole session) is gone: the client reset it or disconnected."""


class SpdyStream:
    """One stream the client opened."""

    def __init__(self, session: SpdySession, stream_id: int, headers: spdy.Headers) -> None:
        self.session = session
        self.id = stream_id
        self.headers = headers
        self.inbound = InboundBuffer()
        self.reset_by_peer = False
        self.finished = False  # we sent FIN (or RST)

    @property
    def stream_type(self) -> str:
        """The ``streamType`` header."""
        return spdy.header(self.headers, "streamtype")

    async def read(self) -> bytes:
        """The next bytes the client sent; b"" once it finished (FIN), reset the stream or disconnected."""
        data = await self.inbound.read()
        if data:
            self.session.acknowledge(self.id, len(data))
        return data

    def discard_input(self) -> None:
        """Nobody reads this stream: drop (and acknowledge) whatever the client sends on it."""
        self.inbound.discard()

    async def write(self, data: bytes) -> None:
        """Send data, waiting for the peer's window and for the transport; raises StreamClosed."""
        view = memoryview(data)
        while view:
            if self.reset_by_peer or self.finished or self.session.ended:
                raise StreamClosed(f"stream {self.id} is closed")
            window = self.session.conn.send_window(self.id)
            if window <= 0:
                await self.session.window_opened()
                continue
            size = min(window, len(view), WRITE_CHUNK)
            chunk = data if size == len(data) else view[:size].tobytes()
            view = view[size:]
            self.session.conn.send_data(self.id, chunk)
            self.session.flush()
            try:
                await self.session.transport.drain()
            except ConnectionError:
                raise StreamClosed(f"stream {self.id}: connection lost") from None

    def close(self) -> None:
        """Finish our side of the stream (FIN); the client's side may still send."""
        if self.finished or self.reset_by_peer or self.session.ended:
            return
        self.finished = True
        try:
            self.session.conn.send_data(self.id, b"", fin=True)
        except (KeyError, ValueError):
            return
        self.session.flush()

    def reset(self, status: int = spdy.CANCEL) -> None:
        """Abandon the stream (RST_STREAM)."""
        if self.reset_by_peer or self.session.ended:
            return
        self.finished = True
        self.session.conn.reset(self.id, status)
        self.session.flush()
        self.inbound.feed_eof()

    def _peer_reset(self) -> None:
        self.reset_by_peer = True
        self.inbound.feed_eof()


class SpdySession:
    """A server-side SPDY session; ``on_stream`` receives every accepted stream."""

    def __init__(self, transport: ByteTransport, on_stream: Callable[[SpdyStream], None]) -> None:
        self.transport = transport
        self.on_stream = on_stream
        self.conn = spdy.Connection()
        self.streams: dict[int, SpdyStream] = {}
        self.ended = False  # the client is gone (or the session failed)
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._window = asyncio.Event()
        self._closing = False

    def flush(self) -> None:
        """Hand the frames the connection queued to the transport."""
        out = self.conn.data_to_send()
        if out:
            self.transport.write(out)

    def acknowledge(self, stream_id: int, size: int) -> None:
        """Grant consumed bytes back to the client (WINDOW_UPDATE)."""
        if not self.ended:
            self.conn.acknowledge(stream_id, size)
            self.flush()

    async def window_opened(self) -> None:
        """Wait until the client grants more window (or the session ends)."""
        self._window.clear()
        if self.ended:
            return
        waiter = asyncio.ensure_future(self._window.wait())
        try:
            watched: set[asyncio.Future[Any]] = {waiter, self.done}
            await asyncio.wait(watched, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()

    async def run(self) -> None:
        """Read and dispatch frames until the client closes the connection or breaks the protocol."""
        try:
            while True:
                data = await self.transport.read()
                if not data:
                    break
                if self._closing:
                    continue  # we said GOAWAY: drop the rest until the client closes
                try:
                    events = self.conn.receive_data(data)
                except spdy.ProtocolError as exc:
                    log.info("streaming: closing a SPDY connection: %s", exc)
                    self.flush()
                    break
                for event in events:
                    self._dispatch(event)
                self.flush()
                for stream_id in [s for s in self.streams if s not in self.conn.streams]:
                    del self.streams[stream_id]  # closed both ways or reset: nothing more will arrive
                for stream in list(self.streams.values()):
                    await stream.inbound.wait_space()
        finally:
            self._end()

    def _end(self) -> None:
        self.ended = True
        for stream in self.streams.values():
            stream._peer_reset()
        self._window.set()
        if not self.done.done():
            self.done.set_result(None)

    def _dispatch(self, event: spdy.Event) -> None:
        if isinstance(event, spdy.Data):
            stream = self.streams.get(event.stream_id)
            if stream is not None:
                if stream.inbound.discarding and event.data:
                    self.conn.acknowledge(event.stream_id, len(event.data))
                stream.inbound.feed(event.data)
                if event.fin:
                    stream.inbound.feed_eof()
        elif isinstance(event, spdy.StreamOpened):
            self._open(event)
        elif isinstance(event, spdy.StreamReset):
            stream = self.streams.pop(event.stream_id, None)
            if stream is not None:
                stream._peer_reset()
        elif isinstance(event, spdy.WindowUpdated | spdy.SettingsReceived):
            self._window.set()

    def _open(self, event: spdy.StreamOpened) -> None:
        if self._closing:
            self.conn.reset(event.stream_id, spdy.REFUSED_STREAM)
            return
        stream = SpdyStream(self, event.stream_id, event.headers)
        self.streams[event.stream_id] = stream
        if event.fin:
            stream.inbound.feed_eof()
        if event.stream_id in self.conn.streams:  # not already closed both ways (unidirectional + FIN)
            self.conn.reply(event.stream_id)
            self.flush()
        self.on_stream(stream)

    async def close(self, linger: float = CLOSE_LINGER) -> None:
        """GOAWAY, end our direction, wait (``linger``) for the client to close, then close the connection."""
        if not self._closing:
            self._closing = True
            if not self.ended:
                self.conn.go_away()
                self.flush()
        await self.transport.end_output(linger)
        await self.transport.wait_client_end(linger)
        await self.transport.close()
