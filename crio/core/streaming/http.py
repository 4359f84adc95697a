"""The HTTP/1.1 part of the streaming server, sans-IO: request heads in, responses and upgrade decisions out.

Only what the streaming endpoints need: one request per connection, no body, an ``Upgrade`` to SPDY/3.1
or WebSocket. :class:`HeadParser` accumulates bytes until the blank line that ends the head (at most
:data:`MAX_HEAD` bytes) and returns the :class:`Request` and whatever followed it (the start of the
upgraded protocol's data).
"""

from __future__ import annotations

from dataclasses import dataclass, field

MAX_HEAD = 16 * 1024
_TOKEN_CHARS = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")

REASONS = {
    101: "Switching Protocols",
    400: "Bad Request",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    426: "Upgrade Required",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
}


class BadRequest(Exception):
    """The bytes are not an acceptable HTTP/1.1 request head; ``status`` is the answer to give."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Request:
    """A parsed request head. Header names are lowercased; repeated headers keep every value in order."""

    method: str
    target: str
    version: str
    headers: list[tuple[str, str]] = field(default_factory=list)

    @property
    def path(self) -> str:
        """The target without its query string."""
        return self.target.split("?", 1)[0]

    def values(self, name: str) -> list[str]:
        """Every value of a header, comma-separated lists split and trimmed, in order."""
        found: list[str] = []
        for key, value in self.headers:
            if key == name.lower():
                found += [part.strip() for part in value.split(",") if part.strip()]
        return found

    def get(self, name: str) -> str:
        """The first value of a header as sent ("" when absent)."""
        return next((value for key, value in self.headers if key == name.lower()), "")

    def has_token(self, name: str, token: str) -> bool:
        """Whether a comma-separated header lists ``token`` (case-insensitively)."""
        return token.lower() in (value.lower() for value in self.values(name))


class HeadParser:
    """Collects a request head from the connection's first bytes."""

    def __init__(self, limit: int = MAX_HEAD) -> None:
        self.limit = limit
        self._buffer = bytearray()

    def feed(self, data: bytes) -> tuple[Request, bytes] | None:
        """Add bytes; the request and the bytes after its head once the head is complete."""
        self._buffer += data
        end = self._buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(self._buffer) > self.limit:
                raise BadRequest("request head too large", 431)
            return None
        if end > self.limit:
            raise BadRequest("request head too large", 431)
        head, rest = bytes(self._buffer[:end]), bytes(self._buffer[end + 4 :])
        self._buffer.clear()
        return parse_head(head), rest


def parse_head(head: bytes) -> Request:
    """Parse a request line and header fields (no final blank line)."""
    try:
        text = head.decode("latin-1")
    except UnicodeDecodeError:  # pragma: no cover - latin-1 decodes anything
        raise BadRequest("undecodable request head") from None
    lines = text.split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[0] or not set(parts[0]) <= _TOKEN_CHARS:
        raise BadRequest(f"malformed request line {lines[0][:80]!r}")
    method, target, version = parts
    if version not in ("HTTP/1.1", "HTTP/1.0"):
        raise BadRequest(f"unsupported HTTP version {version[:20]!r}")
    if not target.startswith("/"):
        raise BadRequest("request target must be an absolute path")
    headers: list[tuple[str, str]] = []
    for line in lines[1:]:
        if line[:1] in (" ", "\t"):
            raise BadRequest("obsolete header line folding")
        name, sep, value = line.partition(":")
        if not sep or not name or not set(name) <= _TOKEN_CHARS:
            raise BadRequest(f"malformed header line {line[:80]!r}")
        headers.append((name.lower(), value.strip(" \t")))
    return Request(method, target, version, headers)


def response(status: int, headers: list[tuple[str, str]] | None = None, body: str = "") -> bytes:
    """An HTTP/1.1 response; a body makes it text/plain with Content-Length."""
    lines = [f"HTTP/1.1 {status} {REASONS.get(status, 'Error')}"]
    fields = list(headers or [])
    if status != 101:
        payload = body.encode()
        fields += [
            ("Content-Type", "text/plain; charset=utf-8"),
            ("Content-Length", str(len(payload))),
            ("Connection", "close"),
        ]
    lines += [f"{name}: {value}" for name, value in fields]
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return head + (body.encode() if status != 101 else b"")


def negotiate(offered: list[str], supported: list[str]) -> str | None:
    """The first protocol the client offered that the server supports (the client's order wins)."""
    return next((protocol for protocol in offered if protocol in supported), None)
