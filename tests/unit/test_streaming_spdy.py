"""SPDY/3.1 framing and session state (crio.core.streaming.spdy), from the protocol's frame layouts."""

from __future__ import annotations

import hashlib
import struct
import zlib
from collections.abc import Callable

import pytest

from crio.core.streaming import spdy

# sha256 of the SPDY/3 header-compression dictionary (1423 bytes) as the Go implementations carry it.
DICTIONARY_SHA256 = "51d27341373f923f3cd88e1eb7162aeaa3723d7585ff2399201dc06498407f02"


class Client:
    """The client's side of the wire, built from the frame layouts (its own zlib stream)."""

    def __init__(self) -> None:
        self.compressor = zlib.compressobj(zlib.Z_BEST_COMPRESSION, zlib.DEFLATED, 15, zdict=spdy.DICTIONARY)
        self.decompressor = zlib.decompressobj(zdict=spdy.DICTIONARY)

    def block(self, headers: dict[str, list[str]]) -> bytes:
        raw = spdy.encode_header_block(headers)
        return self.compressor.compress(raw) + self.compressor.flush(zlib.Z_SYNC_FLUSH)

    def syn_stream(self, stream_id: int, headers: dict[str, list[str]], flags: int = 0) -> bytes:
        payload = struct.pack(">IIBB", stream_id, 0, 3 << 5, 0) + self.block(headers)
        return spdy.control_frame(spdy.SYN_STREAM, flags, payload)

    def headers(self, stream_id: int, headers: dict[str, list[str]], flags: int = 0) -> bytes:
        return spdy.control_frame(spdy.HEADERS, flags, struct.pack(">I", stream_id) + self.block(headers))

    @staticmethod
    def data(stream_id: int, payload: bytes, fin: bool = False) -> bytes:
        return spdy.data_frame_header(stream_id, len(payload), fin) + payload

    def parse(self, wire: bytes) -> list[tuple[int, int, int, bytes]]:
        """Split server output into (type or -stream id, flags, length, payload) tuples."""
        frames = []
        while wire:
            first, second = struct.unpack_from(">II", wire)
            length = second & 0xFFFFFF
            payload = wire[8 : 8 + length]
            kind = first & 0xFFFF if first & 0x80000000 else -(first & 0x7FFFFFFF)
            frames.append((kind, second >> 24, length, payload))
            wire = wire[8 + length :]
        return frames

    def reply_headers(self, payload: bytes) -> dict[str, list[str]]:
        return spdy.decode_header_block(self.decompressor.decompress(payload[4:]))


def out(conn: spdy.Connection) -> bytes:
    return b"".join(conn.data_to_send())


def opened(conn: spdy.Connection, client: Client, stream_id: int = 1, **headers: str) -> None:
    events = conn.receive_data(client.syn_stream(stream_id, {k: [v] for k, v in headers.items()}))
    assert isinstance(events[0], spdy.StreamOpened)


def test_dictionary_is_the_spdy3_dictionary() -> None:
    assert len(spdy.DICTIONARY) == 1423
    assert hashlib.sha256(spdy.DICTIONARY).hexdigest() == DICTIONARY_SHA256
    assert spdy.DICTIONARY.startswith(b"\x00\x00\x00\x07options\x00\x00\x00\x04head")
    assert spdy.DICTIONARY.endswith(b"charset=iso-8859-1,utf-,*,enq=0.")


@pytest.mark.parametrize(
    "headers",
    [{}, {"streamtype": ["error"]}, {"a": ["1", "2"], "port": ["80"], "requestid": ["0"]}, {"x": [""]}],
)
def test_header_block_round_trip(headers: dict[str, list[str]]) -> None:
    assert spdy.decode_header_block(spdy.encode_header_block(headers)) == headers


def test_header_block_lowercases_names_and_joins_values_with_nul() -> None:
    raw = spdy.encode_header_block({"StreamType": ["a", "b"]})
    assert raw == struct.pack(">II", 1, 10) + b"streamtype" + struct.pack(">I", 3) + b"a\0b"


def _block(*parts: bytes) -> bytes:
    return b"".join(parts)


def _s(text: bytes) -> bytes:
    return struct.pack(">I", len(text)) + text


@pytest.mark.parametrize(
    ("block", "message"),
    [
        (b"\x00\x00", "too short"),
        (_block(struct.pack(">I", 1), struct.pack(">I", 9), b"abc"), "truncated"),
        (_block(struct.pack(">I", 1), _s(b"a"), struct.pack(">I", 5)), "truncated"),
        (_block(struct.pack(">I", 2), _s(b"a"), _s(b"1")), "truncated"),
        (struct.pack(">I", 100000), "headers"),
        (_block(struct.pack(">I", 1), _s(b"Upper"), _s(b"1")), "lowercase"),
        (_block(struct.pack(">I", 2), _s(b"a"), _s(b"1"), _s(b"a"), _s(b"2")), "duplicate"),
        (_block(struct.pack(">I", 1), _s(b""), _s(b"1")), "empty header name"),
        (_block(struct.pack(">I", 0), b"junk"), "trailing"),
    ],
)
def test_header_block_rejects_malformed_input(block: bytes, message: str) -> None:
    with pytest.raises(spdy.ProtocolError, match=message):
        spdy.decode_header_block(block)


def test_syn_stream_opens_and_reply_carries_compressed_headers() -> None:
    conn, client = spdy.Connection(), Client()
    events = conn.receive_data(client.syn_stream(1, {"streamtype": ["error"]}))
    assert events == [spdy.StreamOpened(1, {"streamtype": ["error"]}, priority=3)]
    conn.reply(1)
    (kind, flags, _, payload) = client.parse(out(conn))[0]
    assert (kind, flags) == (spdy.SYN_REPLY, 0)
    assert struct.unpack(">I", payload[:4])[0] == 1
    assert client.reply_headers(payload) == {}


def test_shared_zlib_stream_across_frames_and_byte_by_byte_input() -> None:
    conn, client = spdy.Connection(), Client()
    wire = b"".join(
        client.syn_stream(i, {"streamtype": [t], "port": ["80"]}) for i, t in ((1, "error"), (3, "data"))
    )
    wire += client.data(3, b"hello", fin=True)
    events: list[spdy.Event] = []
    for byte in wire:
        events += conn.receive_data(bytes([byte]))
    assert [type(e).__name__ for e in events if not isinstance(e, spdy.Data)] == [
        "StreamOpened",
        "StreamOpened",
    ]
    data = [e for e in events if isinstance(e, spdy.Data)]
    assert b"".join(e.data for e in data) == b"hello"
    assert data[-1].fin and not any(e.fin for e in data[:-1])


def test_data_frame_is_passed_on_in_pieces_as_it_arrives() -> None:
    conn, client = spdy.Connection(), Client()
    opened(conn, client)
    frame = client.data(1, b"x" * 1000)
    first = conn.receive_data(frame[:300])
    second = conn.receive_data(frame[300:])
    assert first == [spdy.Data(1, b"x" * 292)]
    assert second == [spdy.Data(1, b"x" * 708)]


def test_empty_data_frame_with_fin_closes_the_remote_side() -> None:
    conn, client = spdy.Connection(), Client()
    opened(conn, client)
    assert conn.receive_data(client.data(1, b"", fin=True)) == [spdy.Data(1, b"", fin=True)]
    conn.receive_data(client.data(1, b"late"))
    (kind, _, _, payload) = client.parse(out(conn))[0]
    assert kind == spdy.RST_STREAM
    assert struct.unpack(">II", payload) == (1, spdy.STREAM_ALREADY_CLOSED)


def test_data_for_an_unknown_stream_is_reset_not_delivered() -> None:
    conn, client = spdy.Connection(), Client()
    assert conn.receive_data(client.data(5, b"abc")) == []
    (kind, _, _, payload) = client.parse(out(conn))[0]
    assert kind == spdy.RST_STREAM and struct.unpack(">II", payload) == (5, spdy.INVALID_STREAM)


def test_send_data_fin_and_stream_lifecycle() -> None:
    conn, client = spdy.Connection(), Client()
    opened(conn, client)
    conn.reply(1)
    conn.data_to_send()
    conn.send_data(1, b"out")
    conn.send_data(1, b"", fin=True)
    frames = client.parse(out(conn))
    assert frames == [(-1, 0, 3, b"out"), (-1, spdy.FLAG_FIN, 0, b"")]
    with pytest.raises(ValueError):
        conn.send_data(1, b"more")
    conn.receive_data(client.data(1, b"", fin=True))
    assert 1 not in conn.streams  # both sides closed


def test_unidirectional_stream_is_closed_for_sending() -> None:
    conn, client = spdy.Connection(), Client()
    conn.receive_data(client.syn_stream(1, {}, spdy.FLAG_UNIDIRECTIONAL))
    with pytest.raises(ValueError):
        conn.send_data(1, b"x")


def test_peer_ping_is_echoed_and_our_ping_answer_is_reported() -> None:
    conn, client = spdy.Connection(), Client()
    events = conn.receive_data(spdy.control_frame(spdy.PING, 0, struct.pack(">I", 7)))
    assert events == [spdy.PingReceived(7)]
    assert client.parse(out(conn)) == [(spdy.PING, 0, 4, struct.pack(">I", 7))]
    ping_id = conn.ping()
    assert ping_id % 2 == 0
    conn.data_to_send()
    assert conn.receive_data(spdy.control_frame(spdy.PING, 0, struct.pack(">I", ping_id))) == [
        spdy.PingReceived(ping_id, ours=True)
    ]
    assert out(conn) == b""


def test_rst_stream_goaway_and_headers_events() -> None:
    conn, client = spdy.Connection(), Client()
    opened(conn, client, 1)
    opened(conn, client, 3)
    events = conn.receive_data(client.headers(3, {"k": ["v"]}, spdy.FLAG_FIN))
    assert events == [spdy.HeadersReceived(3, {"k": ["v"]}, fin=True)]
    assert conn.receive_data(spdy.control_frame(spdy.RST_STREAM, 0, struct.pack(">II", 1, spdy.CANCEL))) == [
        spdy.StreamReset(1, spdy.CANCEL)
    ]
    assert conn.receive_data(spdy.control_frame(spdy.GOAWAY, 0, struct.pack(">II", 3, 0))) == [
        spdy.GoAwayReceived(3, 0)
    ]


def test_unknown_control_frame_type_is_ignored() -> None:
    conn = spdy.Connection()
    assert conn.receive_data(spdy.control_frame(0x55, 0, b"whatever")) == []
    assert out(conn) == b""


def test_flow_control_only_once_the_peer_does_it() -> None:
    conn, client = spdy.Connection(), Client()
    opened(conn, client)
    assert conn.send_window(1) == spdy.MAX_WINDOW  # spdystream clients never send WINDOW_UPDATE
    conn.send_data(1, b"x" * 100_000)
    events = conn.receive_data(spdy.control_frame(spdy.WINDOW_UPDATE, 0, struct.pack(">II", 1, 1000)))
    assert events == [spdy.WindowUpdated(1, 1000)]
    assert conn.flow_control
    assert conn.send_window(1) == 0  # 64 KiB - 100000 + 1000 < 0, and the session window too
    conn.receive_data(spdy.control_frame(spdy.WINDOW_UPDATE, 0, struct.pack(">II", 0, 100_000)))
    conn.receive_data(spdy.control_frame(spdy.WINDOW_UPDATE, 0, struct.pack(">II", 1, 40_000)))
    assert conn.send_window(1) == spdy.INITIAL_WINDOW - 100_000 + 41_000
    with pytest.raises(ValueError, match="window"):
        conn.send_data(1, b"y" * 10_000)


def test_settings_initial_window_adjusts_open_streams() -> None:
    conn, client = spdy.Connection(), Client()
    opened(conn, client)
    payload = struct.pack(">III", 1, spdy.SETTINGS_INITIAL_WINDOW_SIZE, 1000)
    events = conn.receive_data(spdy.control_frame(spdy.SETTINGS, 0, payload))
    assert events == [spdy.SettingsReceived({spdy.SETTINGS_INITIAL_WINDOW_SIZE: 1000})]
    assert conn.send_window(1) == 1000


def test_stream_window_overflow_resets_the_stream() -> None:
    conn, client = spdy.Connection(), Client()
    opened(conn, client)
    events = conn.receive_data(
        spdy.control_frame(spdy.WINDOW_UPDATE, 0, struct.pack(">II", 1, spdy.MAX_WINDOW))
    )
    assert events == [spdy.StreamReset(1, spdy.FLOW_CONTROL_ERROR)]


def test_acknowledged_data_is_granted_back_in_batches() -> None:
    conn, client = spdy.Connection(), Client()
    opened(conn, client)
    conn.data_to_send()
    conn.acknowledge(1, 1000)
    assert out(conn) == b""
    conn.acknowledge(1, spdy.INITIAL_WINDOW // 2)
    frames = client.parse(out(conn))
    updates = sorted(
        struct.unpack(">II", payload) for kind, _, _, payload in frames if kind == spdy.WINDOW_UPDATE
    )
    assert updates == [(0, 1000 + spdy.INITIAL_WINDOW // 2), (1, 1000 + spdy.INITIAL_WINDOW // 2)]


def test_go_away_is_sent_once_and_refuses_new_streams() -> None:
    conn, client = spdy.Connection(), Client()
    opened(conn, client, 1)
    conn.go_away()
    conn.go_away()
    assert [f[0] for f in client.parse(out(conn))] == [spdy.GOAWAY]
    assert conn.receive_data(client.syn_stream(3, {})) == []
    (kind, _, _, payload) = client.parse(out(conn))[0]
    assert kind == spdy.RST_STREAM and struct.unpack(">II", payload) == (3, spdy.REFUSED_STREAM)


def _bomb() -> bytes:
    compressor = zlib.compressobj(9, zlib.DEFLATED, 15, zdict=spdy.DICTIONARY)
    raw = struct.pack(">I", 1) + _s(b"a") + _s(b"z" * (spdy.MAX_HEADER_BLOCK + 10))
    return compressor.compress(raw) + compressor.flush(zlib.Z_SYNC_FLUSH)


MALFORMED: list[tuple[str, Callable[[Client], bytes]]] = [
    ("version", lambda c: struct.pack(">II", 0x80000000 | (2 << 16) | spdy.PING, 4) + b"\0\0\0\1"),
    ("stream id 2", lambda c: c.syn_stream(2, {})),
    ("stream id 0", lambda c: c.syn_stream(0, {})),
    ("after stream", lambda c: c.syn_stream(5, {}) + c.syn_stream(3, {})),
    ("short SYN_STREAM", lambda c: spdy.control_frame(spdy.SYN_STREAM, 0, b"\0\0\0\1")),
    (
        "decompress",
        lambda c: spdy.control_frame(spdy.SYN_STREAM, 0, struct.pack(">IIBB", 1, 0, 0, 0) + b"garbage!"),
    ),
    (
        "too large",
        lambda c: spdy.control_frame(spdy.SYN_STREAM, 0, struct.pack(">IIBB", 1, 0, 0, 0) + _bomb()),
    ),
    ("RST_STREAM of wrong length", lambda c: spdy.control_frame(spdy.RST_STREAM, 0, b"\0\0\0\1")),
    ("RST_STREAM for stream 0", lambda c: spdy.control_frame(spdy.RST_STREAM, 0, struct.pack(">II", 0, 1))),
    ("PING of wrong length", lambda c: spdy.control_frame(spdy.PING, 0, b"\0\0\0\0\1")),
    ("SETTINGS of wrong length", lambda c: spdy.control_frame(spdy.SETTINGS, 0, struct.pack(">II", 2, 7))),
    ("short SETTINGS", lambda c: spdy.control_frame(spdy.SETTINGS, 0, b"\0")),
    ("WINDOW_UPDATE of 0", lambda c: spdy.control_frame(spdy.WINDOW_UPDATE, 0, struct.pack(">II", 1, 0))),
    ("WINDOW_UPDATE of wrong length", lambda c: spdy.control_frame(spdy.WINDOW_UPDATE, 0, b"\0\0\0\1")),
    ("GOAWAY of wrong length", lambda c: spdy.control_frame(spdy.GOAWAY, 0, b"\0\0\0\0\0")),
    ("short HEADERS", lambda c: spdy.control_frame(spdy.HEADERS, 0, b"\0\0")),
    ("data frame on stream 0", lambda c: struct.pack(">II", 0, 3) + b"abc"),
    (
        "control frame of",
        lambda c: struct.pack(">II", 0x80000000 | (3 << 16) | 1, spdy.MAX_CONTROL_FRAME + 1),
    ),
]


@pytest.mark.parametrize(("message", "build"), MALFORMED, ids=[m for m, _ in MALFORMED])
def test_malformed_frames_end_the_session_with_goaway(message: str, build: Callable[[Client], bytes]) -> None:
    conn, client = spdy.Connection(), Client()
    with pytest.raises(spdy.ProtocolError, match=message):
        conn.receive_data(build(client))
    frames = client.parse(out(conn))
    assert frames[-1][0] == spdy.GOAWAY
    assert struct.unpack(">II", frames[-1][3])[1] == spdy.GOAWAY_PROTOCOL_ERROR
    assert conn.closed


def test_data_frame_header_limits() -> None:
    with pytest.raises(ValueError):
        spdy.data_frame_header(0, 1, False)
    with pytest.raises(ValueError):
        spdy.data_frame_header(1, spdy.MAX_FRAME_PAYLOAD + 1, False)
    assert spdy.data_frame_header(3, 5, True) == struct.pack(">II", 3, (1 << 24) | 5)


def test_header_lookup_is_case_insensitive() -> None:
    assert spdy.header({"streamtype": ["stdin"]}, "streamType") == "stdin"
    assert spdy.header({}, "port") == ""
