"""RFC 6455 WebSocket (server side) and the Kubernetes channel protocols on it, sans-IO.

:class:`Connection` turns the client's bytes into events and queues frames to send. Message payloads are
passed on as they arrive (:class:`MessageData` chunks, fragmented messages included), never buffered whole;
only control frames (at most 125 bytes) are. Client frames must be masked; a protocol violation queues a
Close frame with the RFC's status code (1002, or 1007 for invalid UTF-8) and raises :class:`ProtocolError`.
A Ping is answered with a Pong and a Close with a Close automatically.

:class:`ChannelDecoder` and :func:`encode_channel` implement the Kubernetes channel protocols
(``channel.k8s.io`` and its versions): every binary message starts with one byte naming the channel
(0 stdin, 1 stdout, 2 stderr, 3 error, 4 resize); the ``base64`` variants send text messages whose first
character is the channel as an ASCII digit and whose rest is base64. ``v5.channel.k8s.io`` adds the close
signal: the two-byte message ``255, <channel>`` half-closes that channel.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import hashlib
import struct
from dataclasses import dataclass

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

OP_CONTINUATION = 0x0
OP_TEXT = 0x1
OP_BINARY = 0x2
OP_CLOSE = 0x8
OP_PING = 0x9
OP_PONG = 0xA
_DATA_OPCODES = (OP_TEXT, OP_BINARY)
_CONTROL_OPCODES = (OP_CLOSE, OP_PING, OP_PONG)

CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001
CLOSE_PROTOCOL_ERROR = 1002
CLOSE_NO_STATUS = 1005
CLOSE_INVALID_DATA = 1007
CLOSE_INTERNAL_ERROR = 1011

MAX_CONTROL_PAYLOAD = 125
CLOSE_SIGNAL = 255  # v5.channel.k8s.io: half-close a channel


def accept_key(key: str) -> str:
    """The Sec-WebSocket-Accept value answering a Sec-WebSocket-Key."""
    return base64.b64encode(hashlib.sha1((key.strip() + GUID).encode()).digest()).decode()


def valid_key(key: str) -> bool:
    """A Sec-WebSocket-Key must be the base64 of 16 bytes."""
    try:
        return len(base64.b64decode(key.strip(), validate=True)) == 16
    except (binascii.Error, ValueError):
        return False


def mask(data: bytes, key: bytes, offset: int = 0) -> bytes:
    """XOR ``data`` with the 4-byte masking ``key`` starting at ``offset`` into the key (also unmasks)."""
    if not data:
        return b""
    shift = offset % 4
    rotated = key[shift:] + key[:shift]
    size = len(data)
    stream = (rotated * (size // 4 + 1))[:size]
    return (int.from_bytes(data, "big") ^ int.from_bytes(stream, "big")).to_bytes(size, "big")


def frame(opcode: int, payload: bytes = b"", fin: bool = True, masking_key: bytes | None = None) -> bytes:
    """One encoded frame (servers send unmasked frames; a ``masking_key`` makes a client frame)."""
    first = (0x80 if fin else 0) | opcode
    size = len(payload)
    mask_bit = 0x80 if masking_key is not None else 0
    if size < 126:
        head = struct.pack(">BB", first, mask_bit | size)
    elif size < 1 << 16:
        head = struct.pack(">BBH", first, mask_bit | 126, size)
    else:
        head = struct.pack(">BBQ", first, mask_bit | 127, size)
    if masking_key is not None:
        return head + masking_key + mask(payload, masking_key)
    return head + payload


def close_payload(code: int, reason: str = "") -> bytes:
    """The payload of a Close frame: the code and as much of ``reason`` as fits, cut between characters."""
    text = reason.encode()[: MAX_CONTROL_PAYLOAD - 2].decode("utf-8", errors="ignore")
    return struct.pack(">H", code) + text.encode()


def _valid_close_code(code: int) -> bool:
    return code in (1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014) or (
        3000 <= code <= 4999
    )


class ProtocolError(Exception):
    """The client broke RFC 6455; a Close frame with ``code`` is queued and the connection is over."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(f"{reason} ({code})")
        self.code = code
        self.reason = reason


@dataclass(frozen=True)
class Event:
    """Something the client did."""


@dataclass(frozen=True)
class MessageData(Event):
    """A piece of a text or binary message; ``first``/``last`` mark the message's start and end."""

    opcode: int
    data: bytes
    first: bool
    last: bool


@dataclass(frozen=True)
class Ping(Event):
    """A Ping (already answered)."""

    payload: bytes


@dataclass(frozen=True)
class Pong(Event):
    """A Pong."""

    payload: bytes


@dataclass(frozen=True)
class CloseReceived(Event):
    """A Close; ``code`` is 1005 when the frame had no status."""

    code: int
    reason: str


class Connection:
    """The server side of one WebSocket connection, after the opening handshake."""

    def __init__(self) -> None:
        self._out: list[bytes] = []
        self._head = bytearray()
        self._control = bytearray()
        self._in_frame = False  # a frame head was parsed and its payload is being read
        self._left = 0  # payload bytes of the current frame still to come
        self._opcode = 0
        self._fin = False
        self._key = b""
        self._offset = 0
        self._message: int | None = None  # opcode of the data message in progress
        self._message_started = False
        self._utf8: codecs.IncrementalDecoder | None = None
        self.close_sent = False
        self.close_received = False

    @property
    def closed(self) -> bool:
        """Both sides sent Close: only the TCP connection is left to close."""
        return self.close_sent and self.close_received

    def data_to_send(self) -> list[bytes]:
        """Frames queued for the client, in order (then forgotten)."""
        out, self._out = self._out, []
        return out

    def send(self, data: bytes, binary: bool = True) -> None:
        """Queue one unfragmented message."""
        if not self.close_sent:
            self._out.append(frame(OP_BINARY if binary else OP_TEXT, data))

    def ping(self, payload: bytes = b"") -> None:
        """Queue a Ping."""
        if not self.close_sent:
            self._out.append(frame(OP_PING, payload[:MAX_CONTROL_PAYLOAD]))

    def close(self, code: int = CLOSE_NORMAL, reason: str = "") -> None:
        """Queue our Close (once)."""
        if not self.close_sent:
            self.close_sent = True
            self._out.append(frame(OP_CLOSE, close_payload(code, reason)))

    def receive_data(self, data: bytes) -> list[Event]:
        """Parse bytes from the client; raises ProtocolError (after queuing a Close) on a violation."""
        try:
            return self._receive(data)
        except ProtocolError as exc:
            self.close(exc.code, exc.reason)
            raise

    def _receive(self, data: bytes) -> list[Event]:
        events: list[Event] = []
        view = memoryview(data)
        while view:
            if not self._in_frame:
                view = view[self._take_head(view) :]
                if not self._in_frame:
                    break
                if self._left == 0:
                    self._payload(events, b"")
                continue
            taken = min(self._left, len(view))
            chunk = mask(view[:taken].tobytes(), self._key, self._offset)
            view = view[taken:]
            self._offset += taken
            self._left -= taken
            self._payload(events, chunk)
        return events

    def _take_head(self, view: memoryview) -> int:
        """Accumulate a frame head from ``view``; returns the bytes used (``_in_frame`` once complete)."""
        head = self._head
        used = min(2 - len(head), len(view)) if len(head) < 2 else 0
        head += view[:used]
        if len(head) < 2:
            return used
        if head[0] & 0x70:
            raise ProtocolError(CLOSE_PROTOCOL_ERROR, "reserved bits set (no extension was negotiated)")
        if not head[1] & 0x80:
            raise ProtocolError(CLOSE_PROTOCOL_ERROR, "client frames must be masked")
        size = head[1] & 0x7F
        need = 2 + {126: 2, 127: 8}.get(size, 0) + 4
        more = min(need - len(head), len(view) - used)
        head += view[used : used + more]
        used += more
        if len(head) < need:
            return used
        if size == 126:
            size = struct.unpack_from(">H", head, 2)[0]
        elif size == 127:
            size = struct.unpack_from(">Q", head, 2)[0]
            if size >> 63:
                raise ProtocolError(CLOSE_PROTOCOL_ERROR, "payload length with the top bit set")
        self._opcode, self._fin = head[0] & 0x0F, bool(head[0] & 0x80)
        self._key, self._offset, self._left = bytes(head[need - 4 : need]), 0, size
        head.clear()
        self._check_frame()
        self._in_frame = True
        return used

    def _check_frame(self) -> None:
        opcode = self._opcode
        if opcode in _CONTROL_OPCODES:
            if not self._fin:
                raise ProtocolError(CLOSE_PROTOCOL_ERROR, "fragmented control frame")
            if self._left > MAX_CONTROL_PAYLOAD:
                raise ProtocolError(CLOSE_PROTOCOL_ERROR, "control frame longer than 125 bytes")
            self._control.clear()
        elif opcode == OP_CONTINUATION:
            if self._message is None:
                raise ProtocolError(CLOSE_PROTOCOL_ERROR, "continuation frame without a message")
        elif opcode in _DATA_OPCODES:
            if self._message is not None:
                raise ProtocolError(CLOSE_PROTOCOL_ERROR, "new message inside a fragmented one")
            self._message, self._message_started = opcode, False
            self._utf8 = codecs.getincrementaldecoder("utf-8")() if opcode == OP_TEXT else None
        else:
            raise ProtocolError(CLOSE_PROTOCOL_ERROR, f"unknown opcode {opcode}")

    def _payload(self, events: list[Event], chunk: bytes) -> None:
        """A piece of the current frame's payload (empty for an empty frame); ends the frame when complete."""
        done = self._left == 0
        if done:
            self._in_frame = False
        if self._opcode in _CONTROL_OPCODES:
            self._control += chunk
            if done:
                self._control_frame(events, bytes(self._control))
            return
        last = done and self._fin
        if chunk or last:
            self._message_data(events, chunk, last)
        if last:
            self._message = None

    def _message_data(self, events: list[Event], chunk: bytes, last: bool) -> None:
        assert self._message is not None
        if self._utf8 is not None:
            try:
                self._utf8.decode(chunk, final=last)
            except UnicodeDecodeError:
                raise ProtocolError(CLOSE_INVALID_DATA, "text message is not UTF-8") from None
        if self.close_received:
            return
        events.append(MessageData(self._message, chunk, not self._message_started, last))
        self._message_started = True

    def _control_frame(self, events: list[Event], payload: bytes) -> None:
        """A complete Ping, Pong or Close."""
        if self._opcode == OP_PING:
            if not self.close_sent:
                self._out.append(frame(OP_PONG, payload))
            events.append(Ping(payload))
        elif self._opcode == OP_PONG:
            events.append(Pong(payload))
        else:
            self._on_close(events, payload)

    def _on_close(self, events: list[Event], payload: bytes) -> None:
        if len(payload) == 1:
            raise ProtocolError(CLOSE_PROTOCOL_ERROR, "close frame with a 1-byte payload")
        code, reason = CLOSE_NO_STATUS, ""
        if payload:
            code = struct.unpack_from(">H", payload)[0]
            if not _valid_close_code(code):
                raise ProtocolError(CLOSE_PROTOCOL_ERROR, f"invalid close code {code}")
            try:
                reason = payload[2:].decode()
            except UnicodeDecodeError:
                raise ProtocolError(CLOSE_INVALID_DATA, "close reason is not UTF-8") from None
        self.close_received = True
        if not self.close_sent:
            self.close(CLOSE_NORMAL if code == CLOSE_NO_STATUS else code)
        events.append(CloseReceived(code, reason))


# ----------------------------------------------------------------------------- Kubernetes channel protocols


@dataclass(frozen=True)
class ChannelData:
    """Bytes for one channel."""

    channel: int
    data: bytes


@dataclass(frozen=True)
class ChannelClosed:
    """v5 close signal: the client will send nothing more on ``channel``."""

    channel: int


class ChannelDecoder:
    """Turns message chunks of a channel protocol into per-channel data (and v5 close signals)."""

    def __init__(self, base64_text: bool = False, close_signal: bool = False) -> None:
        self.base64_text = base64_text
        self.close_signal = close_signal
        self._channel: int | None = None
        self._signal: bytearray | None = None
        self._carry = b""  # base64 characters short of a group of four

    def feed(self, event: MessageData) -> list[ChannelData | ChannelClosed]:
        """Decode one message chunk; raises ProtocolError for a malformed message."""
        out: list[ChannelData | ChannelClosed] = []
        data = event.data
        if event.first:
            self._channel, self._signal, self._carry = None, None, b""
        if self._channel is None and self._signal is None and data:
            if self.base64_text != (event.opcode == OP_TEXT):
                raise ProtocolError(CLOSE_PROTOCOL_ERROR, "message type does not match the subprotocol")
            lead, data = data[0], data[1:]
            if self.close_signal and lead == CLOSE_SIGNAL:
                self._signal = bytearray()
            else:
                self._channel = lead - ord("0") if self.base64_text else lead
                if not 0 <= self._channel < CLOSE_SIGNAL:
                    raise ProtocolError(CLOSE_PROTOCOL_ERROR, f"invalid channel {chr(lead)!r}")
        if self._signal is not None:
            self._signal += data
            if len(self._signal) > 1:
                raise ProtocolError(CLOSE_PROTOCOL_ERROR, "close signal longer than one channel byte")
            if event.last:
                if len(self._signal) != 1:
                    raise ProtocolError(CLOSE_PROTOCOL_ERROR, "close signal without a channel")
                out.append(ChannelClosed(self._signal[0]))
            return out
        if self._channel is None:
            return out  # an empty message
        if self.base64_text:
            data = self._decode(data, event.last)
        if data:
            out.append(ChannelData(self._channel, data))
        return out

    def _decode(self, text: bytes, last: bool) -> bytes:
        text = self._carry + text
        usable = len(text) if last else len(text) - len(text) % 4
        self._carry = text[usable:]
        try:
            return base64.b64decode(text[:usable], validate=True)
        except (binascii.Error, ValueError):
            raise ProtocolError(CLOSE_INVALID_DATA, "invalid base64 in a channel message") from None


def encode_channel(channel: int, data: bytes, base64_text: bool = False) -> tuple[bytes, bool]:
    """The payload of a message for ``channel`` and whether it is binary."""
    if base64_text:
        return bytes([ord("0") + channel]) + base64.b64encode(data), False
    return bytes([channel]) + data, True
