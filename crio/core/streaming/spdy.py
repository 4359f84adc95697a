"""SPDY/3.1 framing and session state for the server side, sans-IO: bytes in, events out, bytes to send.

Feed what the socket gave to :meth:`Connection.receive_data`; it returns :class:`Event` objects and queues
any automatic answer (PING echo, RST_STREAM for a frame on an unknown stream). Call the sending methods
(:meth:`~Connection.reply`, :meth:`~Connection.send_data`, ...) and write :meth:`~Connection.data_to_send`
to the socket. Nothing here does I/O or keeps time.

Frames (all big-endian): a control frame starts with the bit 1, the version (3) in 15 bits, the type in
16 bits, then 8 bits of flags and a 24-bit payload length; a data frame starts with the bit 0 and the
31-bit stream id, then flags and length. Header blocks (SYN_STREAM, SYN_REPLY, HEADERS) are a count and
length-prefixed name/value strings (multiple values joined by NUL), compressed with zlib and the fixed SPDY/3
dictionary, as one zlib stream per direction for the whole connection.

Data frame payloads are passed on as they arrive (:class:`Data` may carry part of a frame), so a large frame
never sits in memory whole; control frames are buffered up to :data:`MAX_CONTROL_FRAME` bytes and their
header blocks decompressed up to :data:`MAX_HEADER_BLOCK` bytes.

Flow control (SPDY/3.1: per stream and per session, 64 KiB initial windows): received data is acknowledged
with WINDOW_UPDATE frames once the application reports it consumed (:meth:`Connection.acknowledge`), so a
compliant sender never stalls. The peer's windows are honoured (:meth:`Connection.send_window`) once the
peer shows it does flow control, by sending SETTINGS or WINDOW_UPDATE; the SPDY library the Kubernetes
clients use (moby/spdystream) implements no flow control and never sends either, so with it the only
backpressure is the transport's (TCP).

A malformed frame is a session error: :class:`ProtocolError` is raised from :meth:`receive_data` after a
GOAWAY was queued; the caller sends what is queued and closes the connection.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

VERSION = 3

SYN_STREAM = 1
SYN_REPLY = 2
RST_STREAM = 3
SETTINGS = 4
PING = 6
GOAWAY = 7
HEADERS = 8
WINDOW_UPDATE = 9

FLAG_FIN = 0x01
FLAG_UNIDIRECTIONAL = 0x02

# RST_STREAM status codes.
PROTOCOL_ERROR = 1
INVALID_STREAM = 2
REFUSED_STREAM = 3
UNSUPPORTED_VERSION = 4
CANCEL = 5
INTERNAL_ERROR = 6
FLOW_CONTROL_ERROR = 7
STREAM_IN_USE = 8
STREAM_ALREADY_CLOSED = 9
FRAME_TOO_LARGE = 11

# GOAWAY status codes.
GOAWAY_OK = 0
GOAWAY_PROTOCOL_ERROR = 1
GOAWAY_INTERNAL_ERROR = 11

SETTINGS_INITIAL_WINDOW_SIZE = 7
INITIAL_WINDOW = 64 * 1024
MAX_WINDOW = 2**31 - 1
MAX_FRAME_PAYLOAD = 2**24 - 1
MAX_CONTROL_FRAME = 1024 * 1024  # crio's limit for one control frame
MAX_HEADER_BLOCK = 256 * 1024  # crio's limit for one decompressed header block
MAX_HEADERS = 1000

_HEAD = struct.Struct(">II")
_U32 = struct.Struct(">I")

# The zlib dictionary of SPDY/3 header compression: length-prefixed common header names, then a run of
# common values. Stored as its parts; :data:`DICTIONARY` is the exact byte string.
_DICTIONARY_WORDS = (  # noqa: SIM905 - the words as one readable text
    "options head post put delete trace accept accept-charset accept-encoding accept-language "
    "accept-ranges age allow authorization cache-control connection content-base content-encoding "
    "content-language content-length content-location content-md5 content-range content-type date etag "
    "expect expires from host if-match if-modified-since if-none-match if-range if-unmodified-since "
    "last-modified location max-forwards pragma proxy-authenticate proxy-authorization range referer "
    "retry-after server te trailer transfer-encoding upgrade user-agent vary via warning "
    "www-authenticate method get status 200_OK version HTTP/1.1 url public set-cookie keep-alive origin"
).split()
_DICTIONARY_TAIL = (
    "100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505"
    "203 Non-Authoritative Information204 No Content301 Moved Permanently400 Bad Request401 Unauthorized"
    "403 Forbidden404 Not Found500 Internal Server Error501 Not Implemented503 Service Unavailable"
    "Jan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMT"
    "chunked,text/html,image/png,image/jpg,image/gif,application/xml,application/xhtml+xml,text/plain,"
    "text/javascript,publicprivatemax-age=gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0."
)
DICTIONARY = b"".join(
    _U32.pack(len(word)) + word.replace("_", " ").encode("ascii") for word in _DICTIONARY_WORDS
) + _DICTIONARY_TAIL.encode("ascii")

Headers = dict[str, list[str]]


class ProtocolError(Exception):
    """The peer broke the protocol; the session is over (a GOAWAY is queued)."""


# ------------------------------------------------------------------------------------------------ events


@dataclass(frozen=True)
class Event:
    """Something the peer did."""


@dataclass(frozen=True)
class StreamOpened(Event):
    """SYN_STREAM: the peer opened a stream (``fin``: it will send nothing on it)."""

    stream_id: int
    headers: Headers
    fin: bool = False
    unidirectional: bool = False
    priority: int = 0


@dataclass(frozen=True)
class Data(Event):
    """DATA payload (possibly part of a frame); ``fin`` comes with the last byte the peer sends on it."""

    stream_id: int
    data: bytes
    fin: bool = False


@dataclass(frozen=True)
class StreamReset(Event):
    """RST_STREAM: the peer abandoned the stream."""

    stream_id: int
    status: int


@dataclass(frozen=True)
class HeadersReceived(Event):
    """HEADERS on an open stream."""

    stream_id: int
    headers: Headers
    fin: bool = False


@dataclass(frozen=True)
class WindowUpdated(Event):
    """WINDOW_UPDATE: the peer granted ``delta`` more bytes (stream 0: the whole session)."""

    stream_id: int
    delta: int


@dataclass(frozen=True)
class SettingsReceived(Event):
    """SETTINGS: id → value."""

    settings: Mapping[int, int] = field(default_factory=dict)


@dataclass(frozen=True)
class PingReceived(Event):
    """PING: a peer's ping (already echoed) or the answer to ours."""

    ping_id: int
    ours: bool = False


@dataclass(frozen=True)
class GoAwayReceived(Event):
    """GOAWAY: the peer opens no more streams."""

    last_stream_id: int
    status: int


# ----------------------------------------------------------------------------------------- header blocks


def encode_header_block(headers: Mapping[str, Sequence[str]]) -> bytes:
    """The uncompressed name/value block: names lowercased, multiple values joined by NUL."""
    parts = [_U32.pack(len(headers))]
    for name, values in headers.items():
        raw_name = name.lower().encode()
        raw_value = "\0".join(values).encode()
        parts += [_U32.pack(len(raw_name)), raw_name, _U32.pack(len(raw_value)), raw_value]
    return b"".join(parts)


def decode_header_block(block: bytes) -> Headers:
    """Parse an uncompressed name/value block; raises ProtocolError on malformed input."""
    view = memoryview(block)
    if len(view) < 4:
        raise ProtocolError("header block too short")
    (count,) = _U32.unpack_from(view, 0)
    if count > MAX_HEADERS:
        raise ProtocolError(f"header block with {count} headers")
    pos = 4
    headers: Headers = {}
    for _ in range(count):
        name, pos = _string(view, pos)
        value, pos = _string(view, pos)
        if not name:
            raise ProtocolError("empty header name")
        key = name.decode("latin-1")
        if key != key.lower():
            raise ProtocolError(f"header name {key!r} is not lowercase")
        if key in headers:
            raise ProtocolError(f"duplicate header {key!r}")
        headers[key] = value.decode("latin-1").split("\0")
    if pos != len(view):
        raise ProtocolError("trailing bytes after the header block")
    return headers


def _string(view: memoryview, pos: int) -> tuple[bytes, int]:
    if pos + 4 > len(view):
        raise ProtocolError("truncated header block")
    (length,) = _U32.unpack_from(view, pos)
    end = pos + 4 + length
    if end > len(view):
        raise ProtocolError("truncated header block")
    return bytes(view[pos + 4 : end]), end


def header(headers: Mapping[str, Sequence[str]], name: str) -> str:
    """The first value of a header ("" when absent); names compare case-insensitively."""
    values = headers.get(name.lower())
    return values[0] if values else ""


# ---------------------------------------------------------------------------------------------- frames


def control_frame(kind: int, flags: int, payload: bytes) -> bytes:
    """One encoded control frame."""
    if len(payload) > MAX_FRAME_PAYLOAD:
        raise ValueError("control frame payload too large")
    return _HEAD.pack(0x80000000 | (VERSION << 16) | kind, (flags << 24) | len(payload)) + payload


def data_frame_header(stream_id: int, length: int, fin: bool) -> bytes:
    """The 8-byte header of a data frame carrying ``length`` bytes."""
    if not 0 < stream_id <= MAX_WINDOW or length > MAX_FRAME_PAYLOAD:
        raise ValueError("bad data frame")
    return _HEAD.pack(stream_id, ((FLAG_FIN if fin else 0) << 24) | length)


@dataclass
class _Stream:
    """What the session knows about one stream."""

    local_closed: bool = False
    remote_closed: bool = False
    send_window: int = INITIAL_WINDOW
    unacknowledged: int = 0  # received bytes consumed but not yet granted back


class Connection:
    """The server side of one SPDY/3.1 session."""

    def __init__(self, max_control_frame: int = MAX_CONTROL_FRAME) -> None:
        self.max_control_frame = max_control_frame
        self.streams: dict[int, _Stream] = {}
        self.last_peer_stream = 0
        self.flow_control = False  # does the peer do flow control (SETTINGS or WINDOW_UPDATE seen)?
        self.initial_send_window = INITIAL_WINDOW
        self.session_send_window = INITIAL_WINDOW
        self._session_unacknowledged = 0
        self.closed = False
        self._next_ping = 2  # server pings are even
        self._out: list[bytes] = []
        self._buffer = bytearray()
        self._data_left = 0  # payload bytes of the current data frame still to come
        self._data_stream = 0  # its stream (0: discard the payload)
        self._data_fin = False
        self._compressor = zlib.compressobj(zlib.Z_BEST_COMPRESSION, zlib.DEFLATED, 15, zdict=DICTIONARY)
        self._decompressor = zlib.decompressobj(zdict=DICTIONARY)

    # ------------------------------------------------------------------------------------------ output

    def data_to_send(self) -> list[bytes]:
        """Everything queued for the peer, as buffers to write in order (then forgotten)."""
        out, self._out = self._out, []
        return out

    def _control(self, kind: int, flags: int, payload: bytes) -> None:
        self._out.append(control_frame(kind, flags, payload))

    def _compress(self, headers: Mapping[str, Sequence[str]]) -> bytes:
        block = encode_header_block(headers)
        return self._compressor.compress(block) + self._compressor.flush(zlib.Z_SYNC_FLUSH)

    def reply(
        self, stream_id: int, headers: Mapping[str, Sequence[str]] | None = None, fin: bool = False
    ) -> None:
        """SYN_REPLY: accept a stream the peer opened."""
        self._stream(stream_id)
        payload = _U32.pack(stream_id) + self._compress(headers or {})
        self._control(SYN_REPLY, FLAG_FIN if fin else 0, payload)
        if fin:
            self._local_close(stream_id)

    def send_data(self, stream_id: int, data: bytes, fin: bool = False) -> None:
        """Queue data (and optionally FIN) on a stream; never more than :meth:`send_window` allows."""
        stream = self._stream(stream_id)
        if stream.local_closed:
            raise ValueError(f"stream {stream_id} is closed for sending")
        if self.flow_control and len(data) > self.send_window(stream_id):
            raise ValueError(f"stream {stream_id}: {len(data)} bytes exceed the peer's window")
        view = memoryview(data)
        while True:
            chunk = view[:MAX_FRAME_PAYLOAD]
            view = view[MAX_FRAME_PAYLOAD:]
            last = not view
            self._out.append(data_frame_header(stream_id, len(chunk), fin and last))
            if chunk:
                self._out.append(chunk.tobytes() if len(chunk) != len(data) else data)
            if last:
                break
        stream.send_window -= len(data)
        self.session_send_window -= len(data)
        if fin:
            self._local_close(stream_id)

    def send_window(self, stream_id: int) -> int:
        """How many bytes may be sent on the stream now (unbounded while the peer does no flow control)."""
        if not self.flow_control:
            return MAX_WINDOW
        stream = self.streams.get(stream_id)
        if stream is None:
            return 0
        return max(0, min(stream.send_window, self.session_send_window))

    def reset(self, stream_id: int, status: int = CANCEL) -> None:
        """RST_STREAM: abandon a stream."""
        self._control(RST_STREAM, 0, _HEAD.pack(stream_id & MAX_WINDOW, status))
        self.streams.pop(stream_id, None)

    def acknowledge(self, stream_id: int, consumed: int) -> None:
        """The application consumed ``consumed`` received bytes: grant them back (in batches)."""
        if consumed <= 0:
            return
        self._session_unacknowledged += consumed
        if self._session_unacknowledged >= INITIAL_WINDOW // 2:
            self._control(WINDOW_UPDATE, 0, _HEAD.pack(0, self._session_unacknowledged))
            self._session_unacknowledged = 0
        stream = self.streams.get(stream_id)
        if stream is None or stream.remote_closed:
            return
        stream.unacknowledged += consumed
        if stream.unacknowledged >= INITIAL_WINDOW // 2:
            self._control(WINDOW_UPDATE, 0, _HEAD.pack(stream_id, stream.unacknowledged))
            stream.unacknowledged = 0

    def ping(self) -> int:
        """Send a PING of ours; returns its id."""
        ping_id = self._next_ping
        self._next_ping = (self._next_ping + 2) & 0xFFFFFFFF or 2
        self._control(PING, 0, _U32.pack(ping_id))
        return ping_id

    def go_away(self, status: int = GOAWAY_OK) -> None:
        """GOAWAY: no more streams are accepted; the session ends once its streams are done."""
        if not self.closed:
            self.closed = True
            self._control(GOAWAY, 0, _HEAD.pack(self.last_peer_stream, status))

    def _stream(self, stream_id: int) -> _Stream:
        stream = self.streams.get(stream_id)
        if stream is None:
            raise KeyError(f"no open stream {stream_id}")
        return stream

    def _local_close(self, stream_id: int) -> None:
        stream = self.streams[stream_id]
        stream.local_closed = True
        if stream.remote_closed:
            del self.streams[stream_id]

    def _remote_close(self, stream_id: int) -> None:
        stream = self.streams[stream_id]
        stream.remote_closed = True
        if stream.local_closed:
            del self.streams[stream_id]

    # ------------------------------------------------------------------------------------------- input

    def receive_data(self, data: bytes) -> list[Event]:
        """Parse bytes from the peer; raises ProtocolError (after queuing GOAWAY) on a session error."""
        try:
            return self._receive(data)
        except ProtocolError:
            self.go_away(GOAWAY_PROTOCOL_ERROR)
            raise

    def _receive(self, data: bytes) -> list[Event]:
        events: list[Event] = []
        view = memoryview(data)
        while view:
            if self._data_left:
                taken = min(self._data_left, len(view))
                self._data_left -= taken
                self._deliver(events, view[:taken].tobytes())
                view = view[taken:]
                continue
            need = 8 - len(self._buffer)
            if need > 0:
                self._buffer += view[:need]
                view = view[need:]
                if len(self._buffer) < 8:
                    break
            first, second = _HEAD.unpack_from(self._buffer, 0)
            flags, length = second >> 24, second & 0xFFFFFF
            if not first & 0x80000000:
                self._buffer.clear()
                self._start_data(events, first & MAX_WINDOW, flags, length)
                continue
            if length > self.max_control_frame:
                raise ProtocolError(f"control frame of {length} bytes")
            need = 8 + length - len(self._buffer)
            if need > 0:
                self._buffer += view[:need]
                view = view[need:]
                if len(self._buffer) < 8 + length:
                    break
            payload = bytes(self._buffer[8:])
            self._buffer.clear()
            version, kind = (first >> 16) & 0x7FFF, first & 0xFFFF
            if version != VERSION:
                raise ProtocolError(f"control frame of SPDY version {version}")
            self._control_frame(events, kind, flags, payload)
        return events

    def _start_data(self, events: list[Event], stream_id: int, flags: int, length: int) -> None:
        if stream_id == 0:
            raise ProtocolError("data frame on stream 0")
        stream = self.streams.get(stream_id)
        self._data_fin = bool(flags & FLAG_FIN)
        self._data_left = length
        if stream is None or stream.remote_closed:
            status = INVALID_STREAM if stream is None else STREAM_ALREADY_CLOSED
            self._control(RST_STREAM, 0, _HEAD.pack(stream_id, status))
            self._data_stream = 0
            self._session_unacknowledged += length
            return
        self._data_stream = stream_id
        if length == 0:
            self._deliver(events, b"")

    def _deliver(self, events: list[Event], chunk: bytes) -> None:
        """Pass on a piece of the current data frame (discarded for a rejected stream)."""
        last = self._data_left == 0
        stream_id = self._data_stream
        if stream_id not in self.streams:  # rejected, or reset by the application meanwhile
            return
        fin = last and self._data_fin
        events.append(Data(stream_id, chunk, fin))
        if fin:
            self._remote_close(stream_id)

    def _headers(self, block: bytes) -> Headers:
        try:
            raw = self._decompressor.decompress(block, MAX_HEADER_BLOCK + 1)
        except zlib.error as exc:
            raise ProtocolError(f"header block does not decompress: {exc}") from None
        if len(raw) > MAX_HEADER_BLOCK or self._decompressor.unconsumed_tail:
            raise ProtocolError("header block too large")
        return decode_header_block(raw)

    def _control_frame(self, events: list[Event], kind: int, flags: int, payload: bytes) -> None:
        handler = _HANDLERS.get(kind)
        if handler is not None:  # unknown control frame types are ignored, as the protocol says
            handler(self, events, flags, payload)

    def _on_syn_stream(self, events: list[Event], flags: int, payload: bytes) -> None:
        if len(payload) < 10:
            raise ProtocolError("short SYN_STREAM")
        stream_id = _U32.unpack_from(payload, 0)[0] & MAX_WINDOW
        priority = payload[8] >> 5
        headers = self._headers(payload[10:])
        if stream_id == 0 or stream_id % 2 == 0:
            raise ProtocolError(f"SYN_STREAM with stream id {stream_id}")
        if stream_id <= self.last_peer_stream:
            raise ProtocolError(f"SYN_STREAM {stream_id} after stream {self.last_peer_stream}")
        self.last_peer_stream = stream_id
        if self.closed:
            self._control(RST_STREAM, 0, _HEAD.pack(stream_id, REFUSED_STREAM))
            return
        stream = _Stream(send_window=self.initial_send_window)
        self.streams[stream_id] = stream
        fin, unidirectional = bool(flags & FLAG_FIN), bool(flags & FLAG_UNIDIRECTIONAL)
        events.append(StreamOpened(stream_id, headers, fin, unidirectional, priority))
        if unidirectional:
            stream.local_closed = True
        if fin:
            self._remote_close(stream_id)

    def _on_syn_reply(self, events: list[Event], flags: int, payload: bytes) -> None:
        if len(payload) < 4:
            raise ProtocolError("short SYN_REPLY")
        self._headers(payload[4:])  # keeps the decompressor in step
        stream_id = _U32.unpack_from(payload, 0)[0] & MAX_WINDOW
        # This server opens no streams: a reply can only be for an unknown stream.
        self._control(RST_STREAM, 0, _HEAD.pack(stream_id or 1, INVALID_STREAM))

    def _on_rst_stream(self, events: list[Event], flags: int, payload: bytes) -> None:
        if len(payload) != 8:
            raise ProtocolError("RST_STREAM of wrong length")
        stream_id, status = _HEAD.unpack(payload)
        stream_id &= MAX_WINDOW
        if stream_id == 0:
            raise ProtocolError("RST_STREAM for stream 0")
        if self.streams.pop(stream_id, None) is not None:
            events.append(StreamReset(stream_id, status))

    def _on_settings(self, events: list[Event], flags: int, payload: bytes) -> None:
        if len(payload) < 4:
            raise ProtocolError("short SETTINGS")
        (count,) = _U32.unpack_from(payload, 0)
        if len(payload) != 4 + 8 * count:
            raise ProtocolError("SETTINGS of wrong length")
        settings: dict[int, int] = {}
        for index in range(count):
            ident, value = _HEAD.unpack_from(payload, 4 + 8 * index)
            settings[ident & 0xFFFFFF] = value
        window = settings.get(SETTINGS_INITIAL_WINDOW_SIZE)
        if window is not None:
            if window > MAX_WINDOW:
                raise ProtocolError(f"initial window {window}")
            delta = window - self.initial_send_window
            self.initial_send_window = window
            for stream in self.streams.values():
                stream.send_window += delta
        self.flow_control = True
        events.append(SettingsReceived(settings))

    def _on_ping(self, events: list[Event], flags: int, payload: bytes) -> None:
        if len(payload) != 4:
            raise ProtocolError("PING of wrong length")
        (ping_id,) = _U32.unpack(payload)
        ours = ping_id % 2 == 0
        if not ours:
            self._control(PING, 0, payload)
        events.append(PingReceived(ping_id, ours))

    def _on_goaway(self, events: list[Event], flags: int, payload: bytes) -> None:
        if len(payload) not in (4, 8):  # SPDY/2 had no status
            raise ProtocolError("GOAWAY of wrong length")
        last = _U32.unpack_from(payload, 0)[0] & MAX_WINDOW
        status = _U32.unpack_from(payload, 4)[0] if len(payload) == 8 else GOAWAY_OK
        events.append(GoAwayReceived(last, status))

    def _on_headers(self, events: list[Event], flags: int, payload: bytes) -> None:
        if len(payload) < 4:
            raise ProtocolError("short HEADERS")
        headers = self._headers(payload[4:])
        stream_id = _U32.unpack_from(payload, 0)[0] & MAX_WINDOW
        stream = self.streams.get(stream_id)
        if stream is None or stream.remote_closed:
            self._control(RST_STREAM, 0, _HEAD.pack(stream_id or 1, INVALID_STREAM))
            return
        fin = bool(flags & FLAG_FIN)
        events.append(HeadersReceived(stream_id, headers, fin))
        if fin:
            self._remote_close(stream_id)

    def _on_window_update(self, events: list[Event], flags: int, payload: bytes) -> None:
        if len(payload) != 8:
            raise ProtocolError("WINDOW_UPDATE of wrong length")
        stream_id, delta = _HEAD.unpack(payload)
        stream_id &= MAX_WINDOW
        delta &= MAX_WINDOW
        if delta == 0:
            raise ProtocolError("WINDOW_UPDATE of 0")
        self.flow_control = True
        if stream_id == 0:
            if self.session_send_window + delta > MAX_WINDOW:
                raise ProtocolError("session window overflow")
            self.session_send_window += delta
        else:
            stream = self.streams.get(stream_id)
            if stream is None:
                return
            if stream.send_window + delta > MAX_WINDOW:
                self.reset(stream_id, FLOW_CONTROL_ERROR)
                events.append(StreamReset(stream_id, FLOW_CONTROL_ERROR))
                return
            stream.send_window += delta
        events.append(WindowUpdated(stream_id, delta))


_HANDLERS = {
    SYN_STREAM: Connection._on_syn_stream,
    SYN_REPLY: Connection._on_syn_reply,
    RST_STREAM: Connection._on_rst_stream,
    SETTINGS: Connection._on_settings,
    PING: Connection._on_ping,
    GOAWAY: Connection._on_goaway,
    HEADERS: Connection._on_headers,
    WINDOW_UPDATE: Connection._on_window_update,
}
