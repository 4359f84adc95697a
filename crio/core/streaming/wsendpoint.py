"""WebSocket on asyncio: the sans-IO :mod:`crio.core.streaming.websocket` connection over the upgraded TCP
connection, and :class:`TunnelChannel`, a byte transport made of binary messages (SPDY over WebSocket).

One task calls :meth:`WebSocketEndpoint.receive` (the only reader); Pongs and the answer to the client's
Close are sent as soon as their frames are parsed. Closing sends our Close, waits for the client's (the
closing handshake) and then closes the TCP connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque

from crio.core.streaming import websocket as ws
from crio.core.streaming.channel import TcpChannel

log = logging.getLogger(__name__)


class WebSocketEndpoint:
    """One WebSocket connection, server side."""

    def __init__(self, transport: TcpChannel) -> None:
        self.transport = transport
        self.conn = ws.Connection()
        self.peer_gone = asyncio.Event()  # the client's Close arrived, or the connection ended

    @property
    def last_activity(self) -> float:
        """When bytes last moved."""
        return self.transport.last_activity

    def _flush(self) -> None:
        out = self.conn.data_to_send()
        if out:
            self.transport.write(out)

    async def receive(self) -> list[ws.Event] | None:
        """The next events; None once the client closed (or broke the protocol: our Close is sent)."""
        while not self.peer_gone.is_set():
            data = await self.transport.read()
            if not data:
                break
            try:
                events = self.conn.receive_data(data)
            except ws.ProtocolError as exc:
                log.info("streaming: closing a WebSocket connection: %s", exc)
                self._flush()
                break
            self._flush()
            if any(isinstance(event, ws.CloseReceived) for event in events):
                self.peer_gone.set()
            if events:
                return events
        self.peer_gone.set()
        return None

    def send(self, payload: bytes, binary: bool = True) -> None:
        """Queue one message."""
        self.conn.send(payload, binary)
        self._flush()

    async def drain(self) -> None:
        """Wait for the transport; raises ConnectionError once the connection is gone."""
        if self.peer_gone.is_set() or self.conn.close_sent:
            raise ConnectionResetError("websocket closed")
        await self.transport.drain()

    def send_close(self, code: int = ws.CLOSE_NORMAL, reason: str = "") -> None:
        """Start the closing handshake."""
        self.conn.close(code, reason)
        self._flush()

    async def close(self, code: int = ws.CLOSE_NORMAL, reason: str = "", linger: float = 5.0) -> None:
        """Send Close, wait (``linger``) for the client's Close, close the connection."""
        self.send_close(code, reason)
        with contextlib.suppress(ConnectionError, OSError, TimeoutError):
            await asyncio.wait_for(self.transport.drain(), linger)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.peer_gone.wait(), linger)
        await self.transport.close()


class TunnelChannel:
    """The bytes of binary messages in both directions, as a transport for a SPDY session."""

    def __init__(self, endpoint: WebSocketEndpoint) -> None:
        self.endpoint = endpoint
        self._pending: deque[ws.Event] = deque()

    @property
    def last_activity(self) -> float:
        """When bytes last moved."""
        return self.endpoint.last_activity

    async def read(self) -> bytes:
        """The next tunnelled bytes; b"" when the WebSocket closed."""
        while True:
            while self._pending:
                event = self._pending.popleft()
                if isinstance(event, ws.MessageData):
                    if event.opcode != ws.OP_BINARY:
                        self.endpoint.send_close(
                            ws.CLOSE_PROTOCOL_ERROR, "only binary messages are tunnelled"
                        )
                        return b""
                    if event.data:
                        return event.data
                elif isinstance(event, ws.CloseReceived):
                    return b""
            events = await self.endpoint.receive()
            if events is None:
                return b""
            self._pending.extend(events)

    def write(self, buffers: list[bytes]) -> None:
        """Send bytes as one binary message."""
        if buffers and not self.endpoint.conn.close_sent:
            self.endpoint.send(b"".join(buffers))

    async def drain(self) -> None:
        """Wait for the TCP connection to drain."""
        await self.endpoint.drain()

    async def end_output(self, timeout: float) -> None:
        """Start the closing handshake."""
        self.endpoint.send_close()
        with contextlib.suppress(ConnectionError, OSError, TimeoutError):
            await asyncio.wait_for(self.endpoint.transport.drain(), timeout)

    async def wait_client_end(self, timeout: float) -> None:
        """Wait for the client's Close."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.endpoint.peer_gone.wait(), timeout)

    async def close(self, linger: float = 0.0) -> None:
        """Close the TCP connection."""
        await self.endpoint.transport.close()
