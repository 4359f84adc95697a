"""Fuzz the streaming server's sans-IO protocol code: SPDY/3.1 sessions, WebSocket frames and the channel
protocols, and HTTP request heads. Only each module's ProtocolError/BadRequest may come out, however the
bytes are cut into reads."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from crio.core.streaming import http, spdy
from crio.core.streaming import portforward as pf
from crio.core.streaming import remotecommand as rc
from crio.core.streaming import websocket as ws
from crio.core.streaming.server import parse_duration
from tests.fuzz import wire
from tests.fuzz.harness import counted, mutated_bytes, only, split_points

spdy_bytes = st.one_of(
    wire.spdy_session(), wire.spdy_session().flatmap(mutated_bytes), st.binary(max_size=64)
)


def _serve_spdy(conn: spdy.Connection, chunks: list[bytes]) -> None:
    """Feed the chunks and react as the server does: accept streams, consume data, answer some."""
    for chunk in chunks:
        for event in conn.receive_data(chunk):
            if isinstance(event, spdy.StreamOpened) and event.stream_id in conn.streams:
                conn.reply(event.stream_id)
                spdy.header(event.headers, "streamtype")
            elif isinstance(event, spdy.Data):
                conn.acknowledge(event.stream_id, len(event.data))
                stream = conn.streams.get(event.stream_id)
                if stream is not None and not stream.local_closed and conn.send_window(event.stream_id) > 0:
                    conn.send_data(event.stream_id, event.data[:1])
        conn.data_to_send()


@given(chunks=spdy_bytes.flatmap(split_points))
@counted
def test_spdy_session(chunks: list[bytes]) -> None:
    """SPDY sessions (valid, mutated, random), delivered in arbitrary pieces."""
    with only(spdy.ProtocolError):
        _serve_spdy(spdy.Connection(), chunks)


@given(
    block=st.binary(max_size=64)
    | st.builds(spdy.encode_header_block, st.dictionaries(st.text(), st.lists(st.text())))
)
@counted
def test_spdy_header_block(block: bytes) -> None:
    """Decompressed header blocks."""
    with only(spdy.ProtocolError):
        spdy.decode_header_block(block)


ws_bytes = st.one_of(
    wire.websocket_session, wire.websocket_session.flatmap(mutated_bytes), st.binary(max_size=64)
)


@given(
    chunks=ws_bytes.flatmap(split_points),
    base64_text=st.booleans(),
    close_signal=st.booleans(),
)
@counted
def test_websocket_channels(chunks: list[bytes], base64_text: bool, close_signal: bool) -> None:
    """WebSocket frames and the channel.k8s.io protocols on top (binary, base64, v5 close signals)."""
    conn = ws.Connection()
    decoder = ws.ChannelDecoder(base64_text, close_signal)
    with only(ws.ProtocolError):
        for chunk in chunks:
            for event in conn.receive_data(chunk):
                if isinstance(event, ws.MessageData):
                    decoder.feed(event)
            conn.data_to_send()


request_heads = st.one_of(
    st.sampled_from(wire.UPGRADE_REQUESTS).flatmap(mutated_bytes),
    st.sampled_from(wire.UPGRADE_REQUESTS),
    st.binary(max_size=80).map(lambda b: b + b"\r\n\r\n"),
)


@given(chunks=request_heads.flatmap(split_points), limit=st.sampled_from([http.MAX_HEAD, 64]))
@counted
def test_http_request_head(chunks: list[bytes], limit: int) -> None:
    """Upgrade requests cut into reads; a parsed request answers every header question."""
    parser = http.HeadParser(limit)
    with only(http.BadRequest):
        for chunk in chunks:
            parsed = parser.feed(chunk)
            if parsed is not None:
                request, _ = parsed
                assert request.path.startswith("/")
                request.has_token("connection", "upgrade")
                request.values("x-stream-protocol-version")
                ws.valid_key(request.get("sec-websocket-key"))
                break


@given(text=st.text(alphabet="0123456789.hmsuµn -²", max_size=12) | st.text(max_size=12))
@counted
def test_duration(text: str) -> None:
    """Go durations of the streaming idle timeout: ValueError by contract."""
    with only(ValueError):
        assert parse_duration(text) >= 0


resize_bytes = st.one_of(
    st.lists(
        st.fixed_dictionaries({"Width": st.integers(-1, 70000), "Height": st.integers(0, 70000)}).map(
            lambda size: json.dumps(size).encode()
        ),
        max_size=3,
    ).map(b"".join),
    mutated_bytes(b'{"Width":80,"Height":24}{"width":120,"height":40}'),
    st.just(b"[" * 5000),
)


@given(chunks=resize_bytes.flatmap(split_points))
@counted
def test_resize_stream(chunks: list[bytes]) -> None:
    """Terminal sizes on the resize stream, split across reads: ValueError by contract."""
    decoder = rc.ResizeDecoder()
    with only(ValueError):
        for chunk in chunks:
            for width, height in decoder.feed(chunk):
                assert 0 <= width <= 65535 and 0 <= height <= 65535


_pf_headers = st.fixed_dictionaries(
    {
        "streamtype": st.lists(st.sampled_from(["data", "error", "stdin", ""]), max_size=2),
        "port": st.lists(st.sampled_from(["80", "0", "65536", "٨٠", "+1", " 1", "1_0", "8080"]), max_size=2),
        "requestid": st.lists(st.sampled_from(["0", "1", ""]), max_size=2),
    }
)


@given(streams=st.lists(st.tuples(st.integers(1, 9), _pf_headers), max_size=6))
@counted
def test_port_forward_pairing(streams: list[tuple[int, dict[str, list[str]]]]) -> None:
    """Port-forward stream headers: BadStream by contract; a forwarded port is an ASCII TCP port."""
    pairing: pf.Pairing[int] = pf.Pairing()
    for stream_id, headers in streams:
        with only(pf.BadStream):
            pair = pairing.add(stream_id, headers, stream_id)
            if pair is not None:
                assert 0 < pair.port < 65536
                assert headers["port"][0].isascii(), headers


@given(
    code=st.sampled_from([1000, 1011, 4000]),
    reason=st.text(max_size=130) | st.text(alphabet="aé€😀", min_size=40, max_size=130),
)
@counted
def test_close_payload(code: int, reason: str) -> None:
    """Our Close frames fit a control frame and carry a UTF-8 reason a client can decode."""
    payload = ws.close_payload(code, reason)
    assert len(payload) <= ws.MAX_CONTROL_PAYLOAD
    assert reason.startswith(payload[2:].decode("utf-8"))


@st.composite
def _fragmented(draw: st.DrawFn) -> tuple[list[tuple[int, bytes]], bytes]:
    """Messages (opcode, payload) sent in random fragments with pings between them, and the wire bytes."""
    messages = draw(
        st.lists(
            st.one_of(
                st.binary(max_size=300).map(lambda data: (ws.OP_BINARY, data)),
                st.text(max_size=100).map(lambda text: (ws.OP_TEXT, text.encode())),
            ),
            min_size=1,
            max_size=4,
        )
    )
    sent = b""
    for opcode, data in messages:
        cuts = sorted(draw(st.lists(st.integers(0, len(data)), max_size=3)))
        parts = [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]
        for index, part in enumerate(parts):
            first, last = index == 0, index == len(parts) - 1
            sent += wire.ws_client_frame(
                opcode if first else ws.OP_CONTINUATION, part, last, draw(st.binary(min_size=4, max_size=4))
            )
            if not last and draw(st.booleans()):
                sent += wire.ws_client_frame(ws.OP_PING, b"p", True, b"abcd")
    return messages, sent


@given(sent=_fragmented().flatmap(lambda t: split_points(t[1]).map(lambda chunks: (t[0], chunks))))
@counted
def test_websocket_round_trip(sent: tuple[list[tuple[int, bytes]], list[bytes]]) -> None:
    """Fragmented messages, cut into arbitrary reads, come out whole and in order."""
    messages, chunks = sent
    conn = ws.Connection()
    received: list[tuple[int, bytes]] = []
    for chunk in chunks:
        for event in conn.receive_data(chunk):
            if isinstance(event, ws.MessageData):
                if event.first:
                    received.append((event.opcode, b""))
                received[-1] = (received[-1][0], received[-1][1] + event.data)
    assert received == messages


@st.composite
def _spdy_streams(draw: st.DrawFn) -> tuple[dict[int, tuple[str, bytes]], bytes]:
    """Streams kubectl opens (stream id → (type, data sent with FIN)), interleaved frame by frame."""
    client = wire.SpdyClient()
    types = draw(st.lists(st.sampled_from(wire.EXEC_STREAMS), min_size=1, max_size=4))
    streams = {1 + 2 * index: (kind, draw(st.binary(max_size=200))) for index, kind in enumerate(types)}
    frames = [client.syn_stream(stream_id, kind) for stream_id, (kind, _) in streams.items()]
    pending: list[list[bytes]] = []
    for stream_id, (_, data) in streams.items():
        cuts = sorted(draw(st.lists(st.integers(0, len(data)), max_size=3)))
        parts = [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]
        pending.append(
            [spdy.data_frame_header(stream_id, len(p), i == len(parts) - 1) + p for i, p in enumerate(parts)]
        )
    while any(pending):
        queue = draw(st.sampled_from([q for q in pending if q]))
        frames.append(queue.pop(0))
    return streams, b"".join(frames)


@given(sent=_spdy_streams().flatmap(lambda t: split_points(t[1]).map(lambda chunks: (t[0], chunks))))
@counted
def test_spdy_round_trip(sent: tuple[dict[int, tuple[str, bytes]], list[bytes]]) -> None:
    """Streams and their interleaved data, cut into arbitrary reads, arrive whole, in order, each closed."""
    streams, chunks = sent
    conn = spdy.Connection()
    opened: dict[int, str] = {}
    received: dict[int, bytes] = {}
    finished: set[int] = set()
    for chunk in chunks:
        for event in conn.receive_data(chunk):
            if isinstance(event, spdy.StreamOpened):
                opened[event.stream_id] = spdy.header(event.headers, "streamtype")
            elif isinstance(event, spdy.Data):
                assert event.stream_id not in finished
                received[event.stream_id] = received.get(event.stream_id, b"") + event.data
                if event.fin:
                    finished.add(event.stream_id)
    assert opened == {stream_id: kind for stream_id, (kind, _) in streams.items()}
    assert received == {stream_id: data for stream_id, (_, data) in streams.items()}
    assert finished == set(streams)
