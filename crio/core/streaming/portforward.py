"""The Kubernetes port-forward protocol (``portforward.k8s.io``), sans-IO: pairing a connection's streams.

For every connection to a forwarded port the client opens two SPDY streams carrying the same ``port`` and
``requestID`` headers: ``streamType: error`` (the client closes its sending side at once; the server writes
a message on it if forwarding fails) and ``streamType: data`` (the connection's bytes, both ways). Clients
too old to send ``requestID`` open the error stream right before the data stream, so the pair is then the
error stream's id and that id + 2. A pair is complete when both streams are there; the server then dials
``localhost:port`` in the pod's network namespace. Over WebSocket the same SPDY session is tunnelled in
binary messages (subprotocol ``SPDY/3.1+portforward.k8s.io``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

PROTOCOL = "portforward.k8s.io"
WEBSOCKET_TUNNEL_PROTOCOL = "SPDY/3.1+" + PROTOCOL
ERROR, DATA = "error", "data"
PORT_HEADER = "port"
REQUEST_ID_HEADER = "requestid"
STREAM_TYPE_HEADER = "streamtype"

S = TypeVar("S")


class BadStream(ValueError):
    """A stream whose headers do not make a port-forward stream."""


@dataclass
class Pair(Generic[S]):
    """The two streams of one forwarded connection (``data``/``error`` are set as they arrive)."""

    request_id: str
    port: int
    data: S | None = None
    error: S | None = None

    @property
    def complete(self) -> bool:
        """Both streams arrived."""
        return self.data is not None and self.error is not None


def _first(headers: Mapping[str, Sequence[str]], name: str) -> str:
    values = headers.get(name, ())
    return values[0] if values else ""


def parse_port(text: str) -> int:
    """The ``port`` header as a TCP port; raises BadStream."""
    try:
        port = int(text)
    except ValueError:
        raise BadStream(f"invalid port {text!r}") from None
    if not 0 < port < 65536 or not (text.isascii() and text.isdigit()):
        raise BadStream(f"invalid port {text!r}")
    return port


class Pairing(Generic[S]):
    """Matches error and data streams by request ID."""

    def __init__(self) -> None:
        self.pending: dict[str, Pair[S]] = {}

    def add(self, stream_id: int, headers: Mapping[str, Sequence[str]], stream: S) -> Pair[S] | None:
        """Register a new stream; returns its pair once complete (and forgets it). Raises BadStream."""
        kind = _first(headers, STREAM_TYPE_HEADER)
        if kind not in (ERROR, DATA):
            raise BadStream(f"invalid stream type {kind!r}")
        port = parse_port(_first(headers, PORT_HEADER))
        request_id = _first(headers, REQUEST_ID_HEADER)
        if not request_id:
            request_id = str(stream_id if kind == ERROR else stream_id - 2)
        pair = self.pending.setdefault(request_id, Pair(request_id, port))
        if pair.port != port:
            raise BadStream(f"request {request_id}: port {port} does not match port {pair.port}")
        if (pair.data if kind == DATA else pair.error) is not None:
            raise BadStream(f"request {request_id}: a second {kind} stream")
        if kind == DATA:
            pair.data = stream
        else:
            pair.error = stream
        if not pair.complete:
            return None
        del self.pending[request_id]
        return pair

    def drop(self, request_id: str) -> Pair[S] | None:
        """Forget an incomplete pair (it timed out); returns it."""
        return self.pending.pop(request_id, None)


def error_message(port: int, pod: str, reason: str) -> bytes:
    """What is written on the error stream when forwarding a connection fails."""
    return f"error forwarding port {port} to pod {pod}: {reason}".encode()
