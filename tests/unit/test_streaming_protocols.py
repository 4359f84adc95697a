"""The remote-command and port-forward protocols, the HTTP request head and the streaming tokens."""

from __future__ import annotations

import json

import pytest

from crio.core.config import defaults
from crio.core.errors import InvalidArgument
from crio.core.streaming import http, tokens
from crio.core.streaming import portforward as pf
from crio.core.streaming import remotecommand as rc
from crio.core.streaming.server import parse_duration, url_host
from crio.core.streaming.service import check_config, idle_timeout

# ------------------------------------------------------------------------------------------ remotecommand


@pytest.mark.parametrize(
    ("protocol", "number"),
    [(rc.V1, 1), (rc.V2, 2), (rc.V3, 3), (rc.V4, 4), (rc.V5, 5), (rc.BASE64_V1, 1), (rc.BASE64_V4, 4)],
)
def test_protocol_versions(protocol: str, number: int) -> None:
    assert rc.version(protocol) == number
    assert rc.is_base64(protocol) == ("base64" in protocol)


@pytest.mark.parametrize(
    ("protocol", "flags", "expected"),
    [
        (rc.V4, (False, True, True, False), {"error", "stdout", "stderr"}),
        (rc.V4, (True, True, False, True), {"error", "stdin", "stdout", "resize"}),
        (rc.V4, (True, True, True, True), {"error", "stdin", "stdout", "resize"}),  # no stderr with a tty
        (rc.V2, (True, True, False, True), {"error", "stdin", "stdout"}),  # resize came with v3
        (rc.V1, (False, False, False, False), {"error"}),
    ],
)
def test_expected_streams(protocol: str, flags: tuple[bool, bool, bool, bool], expected: set[str]) -> None:
    assert rc.expected_streams(protocol, *flags) == expected


def test_v4_statuses_decode_as_kubernetes_clients_expect() -> None:
    assert json.loads(rc.outcome(rc.V4, 0)) == {"metadata": {}, "status": "Success"}
    status = json.loads(rc.outcome(rc.V4, 3, ["sh", "-c", "exit 3"]))
    assert status["status"] == "Failure" and status["reason"] == "NonZeroExitCode"
    assert status["details"]["causes"] == [{"reason": "ExitCode", "message": "3"}]
    assert "exit code 3" in status["message"]
    failure = json.loads(rc.outcome(rc.V5, None, failure="container is gone"))
    assert failure["status"] == "Failure" and failure["message"] == "container is gone"
    assert failure["reason"] != "NonZeroExitCode"


def test_exit_codes_fit_in_a_byte() -> None:
    assert json.loads(rc.outcome(rc.V4, 256 + 7))["details"]["causes"][0]["message"] == "7"


def test_pre_v4_outcomes_are_plain_messages() -> None:
    assert rc.outcome(rc.V3, 0) == b""
    assert b"exit code 2" in rc.outcome(rc.V2, 2)
    assert rc.outcome(rc.V1, None, failure="boom") == b"boom"


def test_resize_messages_split_and_back_to_back() -> None:
    decoder = rc.ResizeDecoder()
    assert decoder.feed(b'{"Width":80,') == []
    assert decoder.feed(b'"Height":24}\n{"Width":100,"Height":50}') == [(80, 24), (100, 50)]
    assert decoder.feed(b' {"width": 1, "height": 2}') == [(1, 2)]


@pytest.mark.parametrize(
    "data", [b"[1, 2]", b'{"Width": -1, "Height": 2}', b'{"Width": "80", "Height": 2}', b'{"Width": true}']
)
def test_resize_rejects_garbage(data: bytes) -> None:
    with pytest.raises(ValueError):
        rc.ResizeDecoder().feed(data)


def test_resize_buffer_is_bounded() -> None:
    with pytest.raises(ValueError, match="too long"):
        rc.ResizeDecoder().feed(b'{"Width": ' + b" " * (rc.MAX_RESIZE_BUFFER + 10))


# -------------------------------------------------------------------------------------------- portforward


def headers(kind: str, port: str = "80", request_id: str | None = "0") -> dict[str, list[str]]:
    found = {"streamtype": [kind], "port": [port]}
    if request_id is not None:
        found["requestid"] = [request_id]
    return found


def test_pairs_by_request_id_in_any_order() -> None:
    pairing: pf.Pairing[str] = pf.Pairing()
    assert pairing.add(1, headers("error", request_id="a"), "e-a") is None
    assert pairing.add(3, headers("data", "81", "b"), "d-b") is None
    pair = pairing.add(5, headers("data", request_id="a"), "d-a")
    assert pair is not None and (pair.port, pair.data, pair.error) == (80, "d-a", "e-a")
    assert list(pairing.pending) == ["b"]
    assert pairing.drop("b") is not None and not pairing.pending


def test_without_request_id_the_data_stream_follows_its_error_stream() -> None:
    pairing: pf.Pairing[str] = pf.Pairing()
    assert pairing.add(7, headers("error", request_id=None), "e") is None
    pair = pairing.add(9, headers("data", request_id=None), "d")
    assert pair is not None and pair.request_id == "7"


@pytest.mark.parametrize(
    ("first", "second", "message"),
    [
        (headers("stdout"), None, "stream type"),
        (headers("data", "0"), None, "invalid port"),
        (headers("data", "70000"), None, "invalid port"),
        (headers("data", "+80"), None, "invalid port"),
        (headers("data", "http"), None, "invalid port"),
        (headers("error"), headers("data", "81"), "does not match"),
        (headers("error"), headers("error"), "second error"),
    ],
)
def test_bad_port_forward_streams(
    first: dict[str, list[str]], second: dict[str, list[str]] | None, message: str
) -> None:
    pairing: pf.Pairing[str] = pf.Pairing()
    with pytest.raises(pf.BadStream, match=message):
        pairing.add(1, first, "s1")
        if second is not None:
            pairing.add(3, second, "s2")


# ---------------------------------------------------------------------------------------------------- http


def test_request_head_in_pieces_with_repeated_headers() -> None:
    parser = http.HeadParser()
    wire = (
        b"POST /exec/tok?x=1 HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\n"
        b"X-Stream-Protocol-Version: v4.channel.k8s.io\r\nX-Stream-Protocol-Version: v3.channel.k8s.io, "
        b"channel.k8s.io\r\n\r\n\x80\x03"
    )
    assert parser.feed(wire[:20]) is None
    parsed = parser.feed(wire[20:])
    assert parsed is not None
    request, rest = parsed
    assert (request.method, request.path, rest) == ("POST", "/exec/tok", b"\x80\x03")
    assert request.values("x-stream-protocol-version") == [rc.V4, rc.V3, rc.V1]
    assert request.has_token("Connection", "upgrade") and request.get("upgrade") == "SPDY/3.1"


@pytest.mark.parametrize(
    ("head", "status"),
    [
        (b"GET /\r\n\r\n", 400),
        (b"GET / HTTP/2.0\r\n\r\n", 400),
        (b"GET http://x/ HTTP/1.1\r\n\r\n", 400),
        (b"G(T / HTTP/1.1\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nNoColon\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nA: b\r\n folded\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nBad Name: x\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nA: " + b"x" * 20000 + b"\r\n\r\n", 431),
    ],
)
def test_malformed_request_heads(head: bytes, status: int) -> None:
    with pytest.raises(http.BadRequest) as caught:
        http.HeadParser().feed(head)
    assert caught.value.status == status


def test_unterminated_head_is_bounded() -> None:
    parser = http.HeadParser(limit=100)
    with pytest.raises(http.BadRequest):
        for _ in range(20):
            parser.feed(b"X" * 10)


def test_responses() -> None:
    assert (
        http.response(101, [("Upgrade", "SPDY/3.1")])
        == b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: SPDY/3.1\r\n\r\n"
    )
    answer = http.response(404, body="gone\n")
    assert answer.startswith(b"HTTP/1.1 404 Not Found\r\n") and answer.endswith(
        b"Content-Length: 5\r\nConnection: close\r\n\r\ngone\n"
    )


def test_negotiation_prefers_the_clients_order() -> None:
    assert http.negotiate([rc.V3, rc.V4], rc.SPDY_PROTOCOLS) == rc.V3
    assert http.negotiate(["v9.channel.k8s.io"], rc.SPDY_PROTOCOLS) is None


# -------------------------------------------------------------------------------------------------- tokens


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_tokens_are_single_use_per_kind_and_expire() -> None:
    clock = Clock()
    cache = tokens.TokenCache(ttl=60, clock=clock)
    request = tokens.StreamRequest(tokens.EXEC, "ctr", ("sh",), stdout=True)
    token = cache.insert(request)
    assert cache.consume(tokens.EXEC, token) == request
    assert cache.consume(tokens.EXEC, token) is None
    other = cache.insert(request)
    assert cache.consume(tokens.ATTACH, other) is None
    assert cache.consume(tokens.EXEC, other) is None  # a wrong kind uses it up too
    stale = cache.insert(request)
    clock.now += 61
    assert cache.consume(tokens.EXEC, stale) is None
    assert len(cache) == 0


def test_too_many_tokens_in_flight() -> None:
    cache = tokens.TokenCache(limit=2, clock=Clock())
    cache.insert(tokens.StreamRequest(tokens.EXEC, "a"))
    cache.insert(tokens.StreamRequest(tokens.EXEC, "b"))
    with pytest.raises(Exception, match="too many"):
        cache.insert(tokens.StreamRequest(tokens.EXEC, "c"))


# ------------------------------------------------------------------------------------------------- server


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("", 0.0), ("0", 0.0), ("4h", 14400.0), ("1h30m", 5400.0), ("90s", 90.0), ("1.5s", 1.5), ("500ms", 0.5)],
)
def test_go_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["4", "h", "4x", "1h-"])
def test_bad_go_durations(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


@pytest.mark.parametrize(
    ("address", "host"),
    [
        ("127.0.0.1", "127.0.0.1"),
        ("0.0.0.0", "127.0.0.1"),
        ("", "127.0.0.1"),
        ("::", "[::1]"),
        ("fd00::1", "[fd00::1]"),
    ],
)
def test_url_hosts(address: str, host: str) -> None:
    assert url_host(address) == host


def test_streaming_settings_are_checked_before_start() -> None:
    config = defaults()
    check_config(config)
    assert idle_timeout(config) == 4 * 3600
    config.values["crio.api"]["stream_idle_timeout"] = "90s"
    assert idle_timeout(config) == 90
    config.values["crio.api"]["stream_idle_timeout"] = "soon"
    with pytest.raises(InvalidArgument, match="stream_idle_timeout"):
        check_config(config)
    config.values["crio.api"]["stream_idle_timeout"] = ""
    config.values["crio.api"]["stream_port"] = "70000"
    with pytest.raises(InvalidArgument, match="stream_port"):
        check_config(config)
