"""Seed traffic for the streaming protocols: the frames kubectl/crictl send for exec, attach and port-forward
over SPDY/3.1 and WebSocket, and the HTTP upgrade requests that start them."""

from __future__ import annotations

import base64
import struct
import zlib

from hypothesis import strategies as st

from crio.core.streaming import spdy
from crio.core.streaming import websocket as ws

EXEC_STREAMS = ("error", "stdin", "stdout", "stderr", "resize")


class SpdyClient:
    """A client's side of a SPDY session: its own header compressor, frames per the SPDY/3 layouts."""

    def __init__(self) -> None:
        self._z = zlib.compressobj(zlib.Z_BEST_COMPRESSION, zlib.DEFLATED, 15, zdict=spdy.DICTIONARY)

    def block(self, headers: dict[str, list[str]]) -> bytes:
        """A compressed header block (the compressor's state carries over, as on a real session)."""
        return self._z.compress(spdy.encode_header_block(headers)) + self._z.flush(zlib.Z_SYNC_FLUSH)

    def syn_stream(self, stream_id: int, stream_type: str, flags: int = 0, port: str = "") -> bytes:
        """Open a stream the way kubectl does (streamtype, and for port-forward port/requestid)."""
        headers = {"streamtype": [stream_type]}
        if port:
            headers |= {"port": [port], "requestid": ["0"]}
        payload = struct.pack(">IIBB", stream_id, 0, 0, 0) + self.block(headers)
        return spdy.control_frame(spdy.SYN_STREAM, flags, payload)

    def headers(self, stream_id: int, flags: int = 0) -> bytes:
        """HEADERS on a stream."""
        payload = struct.pack(">I", stream_id) + self.block({"x-extra": ["1"]})
        return spdy.control_frame(spdy.HEADERS, flags, payload)


def spdy_frame(client: SpdyClient, kind: str, stream_id: int, number: int, payload: bytes) -> bytes:
    """One frame of ``kind``; ``number`` is the kind's numeric argument (window, ping id, status)."""
    if kind == "syn":
        stream_type = EXEC_STREAMS[number % len(EXEC_STREAMS)]
        return client.syn_stream(stream_id, stream_type, number % 4)
    if kind == "syn_portforward":
        return client.syn_stream(stream_id, "data" if number % 2 else "error", 0, port=str(number))
    if kind == "data":
        flags = spdy.FLAG_FIN if number % 2 else 0
        return struct.pack(">II", stream_id & spdy.MAX_WINDOW, flags << 24 | len(payload)) + payload
    if kind == "settings":
        entries = struct.pack(">II", spdy.SETTINGS_INITIAL_WINDOW_SIZE, number)
        return spdy.control_frame(spdy.SETTINGS, 0, struct.pack(">I", 1) + entries)
    if kind == "window":
        return spdy.control_frame(spdy.WINDOW_UPDATE, 0, struct.pack(">II", stream_id, number))
    if kind == "ping":
        return spdy.control_frame(spdy.PING, 0, struct.pack(">I", number))
    if kind == "rst":
        return spdy.control_frame(spdy.RST_STREAM, 0, struct.pack(">II", stream_id, number))
    if kind == "headers":
        return client.headers(stream_id, number % 2)
    if kind == "goaway":
        return spdy.control_frame(spdy.GOAWAY, 0, struct.pack(">II", stream_id, number))
    return spdy.control_frame(number & 0xFFFF, 0, payload)  # any control frame type


SPDY_KINDS = (
    "syn",
    "syn_portforward",
    "data",
    "settings",
    "window",
    "ping",
    "rst",
    "headers",
    "goaway",
    "other",
)
_stream_ids = st.sampled_from([0, 1, 3, 5, 7, 2, 2**31 - 1])
_numbers = st.sampled_from([0, 1, 2, 3, 80, 65535, 2**31 - 1, 2**31, 2**32 - 1]) | st.integers(0, 2**32 - 1)


@st.composite
def spdy_session(draw: st.DrawFn) -> bytes:
    """A plausible SPDY session from the client: a sequence of frames sharing one header compressor."""
    client = SpdyClient()
    frames = draw(
        st.lists(
            st.tuples(st.sampled_from(SPDY_KINDS), _stream_ids, _numbers, st.binary(max_size=40)),
            min_size=1,
            max_size=10,
        )
    )
    return b"".join(spdy_frame(client, *frame) for frame in frames)


def ws_client_frame(opcode: int, payload: bytes, fin: bool = True, key: bytes = b"\x01\x02\x03\x04") -> bytes:
    """A masked client frame."""
    return ws.frame(opcode, payload, fin, masking_key=key)


_channel_payloads = st.one_of(
    st.tuples(st.integers(0, 5), st.binary(max_size=30)).map(lambda t: bytes([t[0]]) + t[1]),
    st.tuples(st.integers(0, 5), st.binary(max_size=30)).map(
        lambda t: bytes([ord("0") + t[0]]) + base64.b64encode(t[1])
    ),
    st.sampled_from([b"\xff\x00", b"\xff", b'4{"Width":80,"Height":24}', b""]),
    st.binary(max_size=30),
)
_opcodes = st.sampled_from(
    [ws.OP_BINARY, ws.OP_TEXT, ws.OP_CONTINUATION, ws.OP_PING, ws.OP_PONG, ws.OP_CLOSE]
)
_ws_frames = st.tuples(_opcodes | st.integers(0, 15), _channel_payloads, st.booleans()).map(
    lambda t: ws_client_frame(t[0], t[1], t[2])
)
_close_frames = st.tuples(st.sampled_from([1000, 1001, 1005, 999, 3000, 5000]), st.binary(max_size=6)).map(
    lambda t: ws_client_frame(ws.OP_CLOSE, struct.pack(">H", t[0]) + t[1])
)
websocket_session = st.lists(_ws_frames | _close_frames, min_size=1, max_size=8).map(b"".join)


UPGRADE_REQUESTS = (
    b"POST /exec/AbCdEf12 HTTP/1.1\r\nHost: 127.0.0.1:10010\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\n"
    b"X-Stream-Protocol-Version: v4.channel.k8s.io\r\nX-Stream-Protocol-Version: v3.channel.k8s.io\r\n"
    b"User-Agent: kubectl/v1.31.0\r\n\r\n",
    b"GET /attach/tok_-9 HTTP/1.1\r\nHost: [::1]:34567\r\nUpgrade: websocket\r\n"
    b"Connection: keep-alive, Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
    b"Sec-WebSocket-Protocol: v5.channel.k8s.io, base64.channel.k8s.io\r\n\r\n",
    b"POST /portforward/x HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\n"
    b"X-Stream-Protocol-Version: portforward.k8s.io\r\n\r\n\x80\x03\x00\x04\x00\x00\x00\x0c",
)
