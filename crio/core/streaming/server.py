"""The streaming server: an asyncio HTTP/1.1 server for the URLs the Exec, Attach and PortForward RPCs return.

``/exec/<token>``, ``/attach/<token>`` and ``/portforward/<token>``: the token (single use, expiring, see
:mod:`crio.core.streaming.tokens`) names the prepared request; an unknown, used or stale one answers 404.
The request must upgrade the connection, either to ``SPDY/3.1`` with the subprotocol in
``X-Stream-Protocol-Version`` (remote command: ``v4.channel.k8s.io`` down to ``channel.k8s.io``;
port-forward: ``portforward.k8s.io``) or to WebSocket with the subprotocol in ``Sec-WebSocket-Protocol``
(remote command: ``v5.channel.k8s.io``, ``v4.channel.k8s.io``, the base64 variants and ``channel.k8s.io``;
port-forward: ``SPDY/3.1+portforward.k8s.io``, a SPDY session tunnelled in binary messages).

Each connection is one task. A connection idle (no byte either way) for the configured idle timeout is
closed, which also ends what it relays (an exec'd command is killed). Stopping the server closes every
connection the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import time
from typing import Protocol

from crio.core.errors import CrioError
from crio.core.streaming import http, relay
from crio.core.streaming import portforward as pf
from crio.core.streaming import remotecommand as rc
from crio.core.streaming import websocket as ws
from crio.core.streaming.channel import TcpChannel
from crio.core.streaming.cmdstreams import SpdyStreams, StreamCollector, WsStreams
from crio.core.streaming.forward import PortForwarder
from crio.core.streaming.spdysession import ByteTransport, SpdySession
from crio.core.streaming.tokens import ATTACH, EXEC, PORTFORWARD, StreamRequest, TokenCache
from crio.core.streaming.wsendpoint import TunnelChannel, WebSocketEndpoint
from crio.core.types import StdioSession

log = logging.getLogger(__name__)

HEAD_TIMEOUT = 10.0  # for the request head
STREAM_CREATION_TIMEOUT = 30.0  # for a SPDY client to open its streams
SPDY = "SPDY/3.1"
PROTOCOL_HEADER = "X-Stream-Protocol-Version"


class Backend(Protocol):
    """What the server needs from the daemon."""

    tokens: TokenCache

    async def open_exec(self, request: StreamRequest) -> StdioSession:
        """Start the command of an exec request."""
        ...

    async def open_attach(self, request: StreamRequest) -> tuple[StdioSession, bool]:
        """Attach; also whether the attach ends with the client's stdin (not stdin_once, no terminal)."""
        ...

    def pod_network(self, request: StreamRequest) -> str:
        """The pinned network namespace of a port-forward request's pod ("" for host network)."""
        ...


class Rejected(Exception):
    """Answer the request with an HTTP error."""

    def __init__(self, status: int, message: str, headers: list[tuple[str, str]] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.headers = headers or []


def url_host(address: str) -> str:
    """The host part of a URL for the listen address (an unspecified address is reached on loopback)."""
    try:
        ip = ipaddress.ip_address(address or "0.0.0.0")
    except ValueError:
        return address
    if ip.is_unspecified:
        ip = ipaddress.ip_address("::1" if ip.version == 6 else "127.0.0.1")
    return f"[{ip}]" if ip.version == 6 else str(ip)


def parse_duration(text: str) -> float:
    """A Go duration ("4h", "1h30m", "90s", "500ms") in seconds; "" or "0" mean 0 (no limit)."""
    text = text.strip()
    if text in ("", "0"):
        return 0.0
    units = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}
    total, number = 0.0, ""
    index = 0
    while index < len(text):
        char = text[index]
        if char.isdigit() or char == ".":
            number += char
            index += 1
            continue
        unit = next((u for u in ("ms", "us", "µs", "ns", "h", "m", "s") if text.startswith(u, index)), None)
        if unit is None or not number:
            raise ValueError(f"invalid duration {text!r}")
        total += float(number) * units[unit]
        number, index = "", index + len(unit)
    if number:
        raise ValueError(f"invalid duration {text!r}: missing unit")
    return total


class StreamServer:
    """Serves the streaming endpoints on ``address:port`` ("0": an ephemeral port)."""

    def __init__(self, backend: Backend, address: str, port: str, idle_timeout: float) -> None:
        self.backend = backend
        self.address = address
        self.requested_port = int(port or "0")
        self.idle_timeout = idle_timeout
        self.port = 0
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        """Listen (the port is known afterwards)."""
        self._server = await asyncio.start_server(
            self._accept, self.address or None, self.requested_port, reuse_address=True
        )
        self.port = int(self._server.sockets[0].getsockname()[1])
        log.info("streaming server listening on %s:%d", url_host(self.address), self.port)

    def url(self, kind: str, token: str) -> str:
        """The absolute URL of a prepared request."""
        return f"http://{url_host(self.address)}:{self.port}/{kind}/{token}"

    async def stop(self) -> None:
        """Stop listening and end every connection (their exec'd commands are killed)."""
        if self._server is not None:
            self._server.close()
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 1.0)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        transport = TcpChannel(reader, writer)
        watchdog = asyncio.ensure_future(self._watch_idle(transport, task)) if self.idle_timeout else None
        try:
            await self._serve(transport)
        except (ConnectionError, OSError) as exc:
            log.debug("streaming: connection ended: %s", exc)
        except Exception:
            log.exception("streaming: connection failed")
        finally:
            if watchdog is not None:
                watchdog.cancel()
            with contextlib.suppress(Exception):
                await transport.close()
            self._connections.discard(task)

    async def _watch_idle(self, transport: TcpChannel, task: asyncio.Task[None]) -> None:
        while True:
            idle = time.monotonic() - transport.last_activity
            if idle >= self.idle_timeout:
                log.info("streaming: closing a connection idle for %.0fs", idle)
                transport.idle_for = idle
                task.cancel()
                return
            await asyncio.sleep(min(self.idle_timeout - idle + 0.05, 60.0))

    async def _serve(self, transport: TcpChannel) -> None:
        parser = http.HeadParser()
        try:
            parsed = await asyncio.wait_for(self._read_head(transport, parser), HEAD_TIMEOUT)
        except TimeoutError:
            return
        except http.BadRequest as exc:
            transport.write([http.response(exc.status, body=f"{exc}\n")])
            return
        if parsed is None:
            return
        request, rest = parsed
        transport.push_back(rest)
        try:
            await self._dispatch(transport, request)
        except Rejected as exc:
            log.info("streaming: %s %s: %d %s", request.method, request.path, exc.status, exc)
            transport.write([http.response(exc.status, exc.headers, f"{exc}\n")])
            await transport.close(linger=1.0)

    async def _read_head(
        self, transport: TcpChannel, parser: http.HeadParser
    ) -> tuple[http.Request, bytes] | None:
        while True:
            data = await transport.read()
            if not data:
                return None
            parsed = parser.feed(data)
            if parsed is not None:
                return parsed

    async def _dispatch(self, transport: TcpChannel, request: http.Request) -> None:
        parts = request.path.split("/")
        if len(parts) != 3 or parts[1] not in (EXEC, ATTACH, PORTFORWARD) or not parts[2]:
            raise Rejected(404, "not found")
        if request.method not in ("GET", "POST"):
            raise Rejected(405, f"method {request.method} not allowed")
        prepared = self.backend.tokens.consume(parts[1], parts[2])
        if prepared is None:
            raise Rejected(404, "unknown or expired streaming token")
        upgrade_wanted = request.has_token("connection", "upgrade")
        if upgrade_wanted and request.has_token("upgrade", "websocket"):
            kind = "websocket"
        elif upgrade_wanted and any(SPDY.lower() in v.lower() for v in request.values("upgrade")):
            kind = "spdy"
        else:
            raise Rejected(400, "unable to upgrade: missing upgrade headers in request")
        if prepared.kind == PORTFORWARD:
            await self._port_forward(transport, request, prepared, kind)
        elif kind == "websocket":
            await self._command_websocket(transport, request, prepared)
        else:
            await self._command_spdy(transport, request, prepared)

    async def _give_up(self, transport: TcpChannel, protocol: str, streams: SpdyStreams | WsStreams) -> None:
        """The connection ends early (idle timeout, daemon stopping): say why when idle, else just close."""
        if transport.idle_for:
            reason = f"streaming connection idle for {transport.idle_for:.0f}s: closed"
            await streams.finish(rc.outcome(protocol, None, failure=reason))
        else:
            await streams.abort()

    # ---------------------------------------------------------------------------------------- handshakes

    def _spdy_handshake(self, request: http.Request, supported: list[str], default: str) -> tuple[str, bytes]:
        offered = request.values(PROTOCOL_HEADER)
        protocol = http.negotiate(offered, supported) if offered else default
        if protocol is None:
            accepted = [("X-Accepted-Stream-Protocol-Versions", p) for p in supported]
            raise Rejected(403, f"unable to negotiate protocol: client supports {offered}", accepted)
        fields = [("Connection", "Upgrade"), ("Upgrade", SPDY)]
        if offered:
            fields.append((PROTOCOL_HEADER, protocol))
        return protocol, http.response(101, fields)

    def _websocket_handshake(self, request: http.Request, supported: list[str]) -> tuple[str, bytes]:
        key = request.get("sec-websocket-key")
        if request.get("sec-websocket-version") != "13":
            raise Rejected(426, "unsupported WebSocket version", [("Sec-WebSocket-Version", "13")])
        if not ws.valid_key(key):
            raise Rejected(400, "missing or invalid Sec-WebSocket-Key")
        offered = request.values("sec-websocket-protocol")
        protocol = http.negotiate(offered, supported) if offered else ""
        if protocol is None or (not offered and "" not in supported):
            raise Rejected(400, f"requested protocol(s) are not supported: {offered}; supports {supported}")
        fields = [
            ("Upgrade", "websocket"),
            ("Connection", "Upgrade"),
            ("Sec-WebSocket-Accept", ws.accept_key(key)),
        ]
        if protocol:
            fields.append(("Sec-WebSocket-Protocol", protocol))
        return protocol, http.response(101, fields)

    # ----------------------------------------------------------------------------------- remote commands

    async def _command_spdy(
        self, transport: TcpChannel, request: http.Request, prepared: StreamRequest
    ) -> None:
        protocol, answer = self._spdy_handshake(request, rc.SPDY_PROTOCOLS, rc.V1)
        transport.write([answer])
        expected = rc.expected_streams(
            protocol, prepared.stdin, prepared.stdout, prepared.stderr, prepared.tty
        )
        collector = StreamCollector(expected)
        session = SpdySession(transport, collector.add)
        reader = asyncio.ensure_future(session.run())
        try:
            ready = asyncio.ensure_future(collector.ready.wait())
            await asyncio.wait(
                {ready, reader}, timeout=STREAM_CREATION_TIMEOUT, return_when=asyncio.FIRST_COMPLETED
            )
            ready.cancel()
            streams = SpdyStreams(session, collector.streams, prepared.tty)
            if not collector.ready.is_set():
                if not session.ended:
                    log.info("streaming: timed out waiting for the client's streams %s", sorted(expected))
                    await streams.finish(rc.outcome(protocol, None, failure="timed out waiting for streams"))
                return
            await self._run_command(transport, prepared, protocol, streams)
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader

    async def _command_websocket(
        self, transport: TcpChannel, request: http.Request, prepared: StreamRequest
    ) -> None:
        protocol, answer = self._websocket_handshake(request, [*rc.WEBSOCKET_PROTOCOLS, ""])
        transport.write([answer])
        streams = WsStreams(
            WebSocketEndpoint(transport),
            protocol or rc.V1,
            prepared.tty,
            prepared.stdin,
            prepared.stdout,
            prepared.stderr,
        )
        await self._run_command(transport, prepared, protocol or rc.V1, streams)

    async def _run_command(
        self, transport: TcpChannel, prepared: StreamRequest, protocol: str, streams: SpdyStreams | WsStreams
    ) -> None:
        try:
            if prepared.kind == EXEC:
                session = await self.backend.open_exec(prepared)
                ends_with_stdin = False
            else:
                session, ends_with_stdin = await self.backend.open_attach(prepared)
        except CrioError as exc:
            log.info("streaming: %s %s: %s", prepared.kind, prepared.target, exc)
            await streams.finish(rc.outcome(protocol, None, failure=str(exc)))
            return
        except BaseException:
            await self._give_up(transport, protocol, streams)
            raise
        try:
            if prepared.kind == EXEC:
                code = await relay.relay_exec(session, streams)
                ended = code is not None
                outcome = rc.outcome(protocol, code, prepared.command)
            else:
                ended = await relay.relay_attach(session, streams, ends_with_stdin)
                outcome = rc.outcome(protocol, 0)
        except BaseException:
            await self._give_up(transport, protocol, streams)
            raise
        if ended:
            await streams.finish(outcome)
        else:
            await streams.abort()

    # ------------------------------------------------------------------------------------- port forward

    async def _port_forward(
        self, transport: TcpChannel, request: http.Request, prepared: StreamRequest, kind: str
    ) -> None:
        try:
            netns = self.backend.pod_network(prepared)
        except CrioError as exc:
            raise Rejected(404, str(exc)) from None
        tunnel: ByteTransport
        if kind == "websocket":
            _, answer = self._websocket_handshake(request, [pf.WEBSOCKET_TUNNEL_PROTOCOL])
            transport.write([answer])
            tunnel = TunnelChannel(WebSocketEndpoint(transport))
        else:
            _, answer = self._spdy_handshake(request, [pf.PROTOCOL], pf.PROTOCOL)
            transport.write([answer])
            tunnel = transport
        forwarder = PortForwarder(prepared.target, netns)
        session = SpdySession(tunnel, forwarder.on_stream)
        try:
            await session.run()
        finally:
            await forwarder.close()
            await session.close(linger=1.0)
