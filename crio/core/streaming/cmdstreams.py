"""The client side of a remote command (:class:`~crio.core.streaming.relay.CommandStreams`): SPDY streams
(:class:`SpdyStreams`, once :class:`StreamCollector` has gathered them) or WebSocket channels
(:class:`WsStreams`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from crio.core.streaming import remotecommand as rc
from crio.core.streaming import websocket as ws
from crio.core.streaming.channel import InboundBuffer
from crio.core.streaming.spdysession import SpdySession, SpdyStream, StreamClosed
from crio.core.streaming.wsendpoint import WebSocketEndpoint
from crio.core.types import STDERR, STDOUT

log = logging.getLogger(__name__)

_ROLES = {rc.ERROR, rc.STDIN, rc.STDOUT, rc.STDERR, rc.RESIZE}
_INPUT_ROLES = {rc.STDIN, rc.RESIZE}


class StreamCollector:
    """Gathers the SPDY streams of a remote command by their ``streamType``; ``ready`` once all expected
    ones are there."""

    def __init__(self, expected: set[str]) -> None:
        self.expected = expected
        self.streams: dict[str, SpdyStream] = {}
        self.ready = asyncio.Event()

    def add(self, stream: SpdyStream) -> None:
        """The ``on_stream`` callback of the session."""
        role = stream.stream_type
        if role not in _ROLES or role in self.streams:
            log.info("streaming: rejecting a stream of type %r", role)
            stream.reset()
            return
        if role not in _INPUT_ROLES:
            stream.discard_input()
        self.streams[role] = stream
        if self.expected <= self.streams.keys():
            self.ready.set()


class _Resizes:
    """Turns resize stream bytes into sizes."""

    def __init__(self) -> None:
        self.decoder = rc.ResizeDecoder()
        self.sizes: list[tuple[int, int]] = []

    def feed(self, data: bytes) -> bool:
        """Add bytes; False when they are not valid resize messages."""
        try:
            self.sizes += self.decoder.feed(data)
        except ValueError as exc:
            log.info("streaming: bad resize message: %s", exc)
            return False
        return True


class SpdyStreams:
    """A remote command's SPDY streams."""

    def __init__(self, session: SpdySession, streams: dict[str, SpdyStream], tty: bool) -> None:
        self.session = session
        self.streams = streams
        self.tty = tty
        self.has_stdin = rc.STDIN in streams
        self.lost: asyncio.Future[None] = session.done
        self._resizes = _Resizes()

    async def read_stdin(self) -> bytes:
        """The client's next stdin bytes."""
        return await self.streams[rc.STDIN].read()

    async def read_resize(self) -> tuple[int, int] | None:
        """The next terminal size."""
        stream = self.streams.get(rc.RESIZE)
        if stream is None:
            return None
        while not self._resizes.sizes:
            data = await stream.read()
            if not data or not self._resizes.feed(data):
                return None
        return self._resizes.sizes.pop(0)

    async def write(self, tag: int, data: bytes) -> None:
        """Send output on stdout or stderr (everything on stdout with a terminal)."""
        stream = self.streams.get(rc.STDOUT if tag == STDOUT or self.tty else rc.STDERR)
        if stream is not None:
            with contextlib.suppress(StreamClosed):
                await stream.write(data)

    async def finish(self, outcome: bytes) -> None:
        """Outcome on the error stream, FIN on every stream, then close the session."""
        error = self.streams.get(rc.ERROR)
        if error is not None and outcome:
            with contextlib.suppress(StreamClosed):
                await error.write(outcome)
        for stream in self.streams.values():
            stream.close()
        await self.session.close()

    async def abort(self) -> None:
        """Close the session."""
        await self.session.close(linger=0.0)


class WsStreams:
    """A remote command's WebSocket channels; runs the connection's read loop itself."""

    def __init__(
        self, endpoint: WebSocketEndpoint, protocol: str, tty: bool, stdin: bool, stdout: bool, stderr: bool
    ) -> None:
        self.endpoint = endpoint
        self.base64 = rc.is_base64(protocol)
        self.tty = tty
        self.has_stdin = stdin
        self._outputs = {STDOUT: stdout, STDERR: stderr and not tty}
        self._decoder = ws.ChannelDecoder(self.base64, close_signal=rc.version(protocol) >= 5)
        self._stdin = InboundBuffer()
        self._resizes = _Resizes()
        self._resized = asyncio.Event()
        self._finished = False
        self.lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._reader = asyncio.ensure_future(self._read_loop())
        # The kubelet's server sends one empty message on the first output channel once the streams exist.
        first = rc.STDOUT if stdout else rc.STDERR if stderr and not tty else rc.ERROR
        self._send(rc.CHANNELS[first], b"")

    def _send(self, channel: int, data: bytes) -> None:
        payload, binary = ws.encode_channel(channel, data, self.base64)
        self.endpoint.send(payload, binary)

    async def _read_loop(self) -> None:
        try:
            while (events := await self.endpoint.receive()) is not None:
                for event in events:
                    if isinstance(event, ws.MessageData):
                        self._message(event)
                await self._stdin.wait_space()
        except ws.ProtocolError as exc:
            log.info("streaming: closing a WebSocket connection: %s", exc)
            self.endpoint.send_close(exc.code, exc.reason)
        finally:
            self._stdin.feed_eof()
            self._resized.set()
            if not self.lost.done() and not self._finished:
                self.lost.set_result(None)

    def _message(self, event: ws.MessageData) -> None:
        for item in self._decoder.feed(event):
            if isinstance(item, ws.ChannelClosed):
                if item.channel == rc.CHANNELS[rc.STDIN]:
                    self._stdin.feed_eof()
            elif item.channel == rc.CHANNELS[rc.STDIN]:
                if self.has_stdin:
                    self._stdin.feed(item.data)
            elif item.channel == rc.CHANNELS[rc.RESIZE]:
                self._resizes.feed(item.data)
                self._resized.set()

    async def read_stdin(self) -> bytes:
        """The client's next stdin bytes (b"" after the v5 close signal or at disconnect)."""
        return await self._stdin.read()

    async def read_resize(self) -> tuple[int, int] | None:
        """The next terminal size."""
        while not self._resizes.sizes:
            if self._reader.done():
                return None
            self._resized.clear()
            await self._resized.wait()
        return self._resizes.sizes.pop(0)

    async def write(self, tag: int, data: bytes) -> None:
        """Send output on channel 1 or 2 (everything on 1 with a terminal)."""
        if self.tty:
            tag = STDOUT
        if not self._outputs.get(tag) or self.lost.done():
            return
        self._send(rc.CHANNELS[rc.STDOUT if tag == STDOUT else rc.STDERR], data)
        with contextlib.suppress(ConnectionError):
            await self.endpoint.drain()

    async def finish(self, outcome: bytes) -> None:
        """Outcome on channel 3, then the closing handshake."""
        self._finished = True
        if outcome and not self.lost.done():
            self._send(rc.CHANNELS[rc.ERROR], outcome)
        await self.endpoint.close()
        await self._stop_reader()

    async def abort(self) -> None:
        """Close the connection."""
        self._finished = True
        await self.endpoint.close(ws.CLOSE_GOING_AWAY, linger=0.5)
        await self._stop_reader()

    async def _stop_reader(self) -> None:
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader
