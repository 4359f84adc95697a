"""RFC 6455 frames (crio.core.streaming.websocket) and the Kubernetes channel protocols on top of them."""

from __future__ import annotations

import struct

import pytest

from crio.core.streaming import websocket as ws

KEY = b"\x37\xfa\x21\x3d"


def client_frame(
    opcode: int, payload: bytes = b"", fin: bool = True, key: bytes = KEY, rsv: int = 0
) -> bytes:
    data = bytearray(ws.frame(opcode, payload, fin, masking_key=key))
    data[0] |= rsv
    return bytes(data)


def feed(conn: ws.Connection, wire: bytes, step: int = 0) -> list[ws.Event]:
    if not step:
        return conn.receive_data(wire)
    events: list[ws.Event] = []
    for start in range(0, len(wire), step):
        events += conn.receive_data(wire[start : start + step])
    return events


def message(events: list[ws.Event]) -> bytes:
    return b"".join(e.data for e in events if isinstance(e, ws.MessageData))


def test_accept_key_of_the_rfc_example() -> None:
    assert ws.accept_key("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    assert ws.valid_key("dGhlIHNhbXBsZSBub25jZQ==")
    assert not ws.valid_key("c2hvcnQ=") and not ws.valid_key("not base64!")


def test_masked_hello_of_the_rfc_example() -> None:
    wire = bytes([0x81, 0x85, 0x37, 0xFA, 0x21, 0x3D, 0x7F, 0x9F, 0x4D, 0x51, 0x58])
    assert ws.Connection().receive_data(wire) == [ws.MessageData(ws.OP_TEXT, b"Hello", True, True)]


def test_server_frames_of_the_rfc_examples() -> None:
    assert ws.frame(ws.OP_TEXT, b"Hello") == bytes([0x81, 0x05]) + b"Hello"
    assert ws.frame(ws.OP_TEXT, b"Hel", fin=False) == bytes([0x01, 0x03]) + b"Hel"
    assert ws.frame(ws.OP_PONG, b"Hello") == bytes([0x8A, 0x05]) + b"Hello"
    assert ws.frame(ws.OP_BINARY, b"\0" * 256)[:4] == bytes([0x82, 0x7E, 0x01, 0x00])
    assert ws.frame(ws.OP_BINARY, b"\0" * 65536)[:10] == bytes([0x82, 0x7F, 0, 0, 0, 0, 0, 1, 0, 0])


@pytest.mark.parametrize("offset", [0, 1, 2, 3, 5])
def test_mask_is_its_own_inverse_at_any_offset(offset: int) -> None:
    data = bytes(range(256)) * 3
    assert ws.mask(ws.mask(data, KEY, offset), KEY, offset) == data
    assert ws.mask(data[7:], KEY, offset + 7) == ws.mask(data, KEY, offset)[7:]


@pytest.mark.parametrize(
    ("size", "step"),
    [(size, step) for size in (0, 1, 125, 126, 65535, 65536, 200_000) for step in (0, 7, 4096)]
    + [(size, 1) for size in (0, 1, 125, 126, 300)],
)
def test_payload_lengths_and_split_input(size: int, step: int) -> None:
    payload = bytes(i % 251 for i in range(size))
    events = feed(ws.Connection(), client_frame(ws.OP_BINARY, payload), step)
    assert message(events) == payload
    assert all(isinstance(e, ws.MessageData) and e.opcode == ws.OP_BINARY for e in events)
    assert events[0].first and events[-1].last  # type: ignore[attr-defined]


def test_fragmented_message_with_a_ping_in_between() -> None:
    conn = ws.Connection()
    wire = (
        client_frame(ws.OP_TEXT, b"Hel", fin=False)
        + client_frame(ws.OP_PING, b"p")
        + client_frame(ws.OP_CONTINUATION, b"lo", fin=False)
        + client_frame(ws.OP_CONTINUATION, b"!", fin=True)
    )
    events = conn.receive_data(wire)
    assert events == [
        ws.MessageData(ws.OP_TEXT, b"Hel", True, False),
        ws.Ping(b"p"),
        ws.MessageData(ws.OP_TEXT, b"lo", False, False),
        ws.MessageData(ws.OP_TEXT, b"!", False, True),
    ]
    assert b"".join(conn.data_to_send()) == ws.frame(ws.OP_PONG, b"p")


def test_empty_final_continuation_ends_the_message() -> None:
    conn = ws.Connection()
    events = conn.receive_data(
        client_frame(ws.OP_BINARY, b"ab", fin=False) + client_frame(ws.OP_CONTINUATION)
    )
    assert events[-1] == ws.MessageData(ws.OP_BINARY, b"", False, True)


def test_close_handshake_from_the_client() -> None:
    conn = ws.Connection()
    events = conn.receive_data(client_frame(ws.OP_CLOSE, ws.close_payload(1000, "bye")))
    assert events == [ws.CloseReceived(1000, "bye")]
    assert b"".join(conn.data_to_send()) == ws.frame(ws.OP_CLOSE, struct.pack(">H", 1000))
    assert conn.closed
    conn.send(b"late")
    assert conn.data_to_send() == []


def test_close_without_status_is_answered_with_normal_closure() -> None:
    conn = ws.Connection()
    assert conn.receive_data(client_frame(ws.OP_CLOSE)) == [ws.CloseReceived(ws.CLOSE_NO_STATUS, "")]
    assert b"".join(conn.data_to_send()) == ws.frame(ws.OP_CLOSE, struct.pack(">H", 1000))


def test_close_started_by_the_server() -> None:
    conn = ws.Connection()
    conn.close(ws.CLOSE_NORMAL)
    conn.close(ws.CLOSE_NORMAL)
    assert len(conn.data_to_send()) == 1
    assert not conn.closed
    conn.receive_data(client_frame(ws.OP_CLOSE, ws.close_payload(1000)))
    assert conn.closed and conn.data_to_send() == []


MALFORMED = [
    ("must be masked", ws.frame(ws.OP_BINARY, b"x"), 1002),
    ("reserved bits", client_frame(ws.OP_BINARY, b"x", rsv=0x40), 1002),
    ("unknown opcode", client_frame(0x3, b"x"), 1002),
    ("fragmented control frame", client_frame(ws.OP_PING, b"x", fin=False), 1002),
    ("longer than 125", client_frame(ws.OP_PING, b"x" * 126), 1002),
    ("continuation frame without a message", client_frame(ws.OP_CONTINUATION, b"x"), 1002),
    (
        "new message inside a fragmented one",
        client_frame(ws.OP_TEXT, b"a", fin=False) + client_frame(ws.OP_TEXT, b"b"),
        1002,
    ),
    ("not UTF-8", client_frame(ws.OP_TEXT, b"\xff\xfe"), 1007),
    ("1-byte payload", client_frame(ws.OP_CLOSE, b"\x03"), 1002),
    ("invalid close code", client_frame(ws.OP_CLOSE, struct.pack(">H", 1005)), 1002),
    ("close reason is not UTF-8", client_frame(ws.OP_CLOSE, struct.pack(">H", 1000) + b"\xff"), 1007),
    ("top bit", bytes([0x82, 0xFF]) + struct.pack(">Q", 1 << 63) + KEY, 1002),
]


@pytest.mark.parametrize(("reason", "wire", "code"), MALFORMED, ids=[m[0] for m in MALFORMED])
def test_protocol_violations_close_with_the_rfc_code(reason: str, wire: bytes, code: int) -> None:
    conn = ws.Connection()
    with pytest.raises(ws.ProtocolError, match=reason) as caught:
        conn.receive_data(wire)
    assert caught.value.code == code
    sent = b"".join(conn.data_to_send())
    assert sent[0] == 0x88 and struct.unpack_from(">H", sent, 2)[0] == code


def test_utf8_is_checked_across_fragments() -> None:
    conn = ws.Connection()
    euro = "€".encode()
    events = conn.receive_data(
        client_frame(ws.OP_TEXT, euro[:1], fin=False) + client_frame(ws.OP_CONTINUATION, euro[1:])
    )
    assert message(events) == euro
    with pytest.raises(ws.ProtocolError):
        ws.Connection().receive_data(client_frame(ws.OP_TEXT, euro[:2]))


# ----------------------------------------------------------------------------------------- channels


def chunk(data: bytes, first: bool = True, last: bool = True, opcode: int = ws.OP_BINARY) -> ws.MessageData:
    return ws.MessageData(opcode, data, first, last)


def test_channel_byte_prefixes_the_first_fragment_only() -> None:
    decoder = ws.ChannelDecoder()
    assert decoder.feed(chunk(b"\x00abc", last=False)) == [ws.ChannelData(0, b"abc")]
    assert decoder.feed(chunk(b"\x01def", first=False)) == [ws.ChannelData(0, b"\x01def")]
    assert decoder.feed(chunk(b"\x04{}")) == [ws.ChannelData(4, b"{}")]
    assert decoder.feed(chunk(b"")) == []
    assert decoder.feed(chunk(b"\x02")) == []


def test_v5_close_signal() -> None:
    decoder = ws.ChannelDecoder(close_signal=True)
    assert decoder.feed(chunk(b"\xff\x00")) == [ws.ChannelClosed(0)]
    assert decoder.feed(chunk(b"\xff", last=False)) == []
    assert decoder.feed(chunk(b"\x00", first=False)) == [ws.ChannelClosed(0)]


@pytest.mark.parametrize(
    ("close_signal", "data", "reason"),
    [
        (True, b"\xff", "without a channel"),
        (True, b"\xff\x00\x00", "longer than one"),
        (False, b"\xff\x00", "invalid channel"),
    ],
)
def test_malformed_close_signals(close_signal: bool, data: bytes, reason: str) -> None:
    with pytest.raises(ws.ProtocolError, match=reason):
        ws.ChannelDecoder(close_signal=close_signal).feed(chunk(data))


def test_base64_channels_decode_across_fragments() -> None:
    decoder = ws.ChannelDecoder(base64_text=True)
    assert decoder.feed(chunk(b"0aGVsb", last=False, opcode=ws.OP_TEXT)) == [ws.ChannelData(0, b"hel")]
    assert decoder.feed(chunk(b"G8=", first=False, opcode=ws.OP_TEXT)) == [ws.ChannelData(0, b"lo")]
    with pytest.raises(ws.ProtocolError, match="base64"):
        decoder.feed(chunk(b"0!!!!", opcode=ws.OP_TEXT))
    with pytest.raises(ws.ProtocolError, match="message type"):
        decoder.feed(chunk(b"\x00abc"))


def test_encode_channel() -> None:
    assert ws.encode_channel(1, b"out") == (b"\x01out", True)
    assert ws.encode_channel(3, b"err", base64_text=True) == (b"3ZXJy", False)
