"""Single-use, expiring tokens naming the streaming requests the Exec, Attach and PortForward RPCs prepared.

An RPC stores what the client asked for and answers with a URL holding a random token; the client's HTTP
request consumes it. A token works once, for its own kind of endpoint, and only within :data:`TTL`
seconds (the kubelet's streaming server uses the same minute); anything else is "not found".
"""

from __future__ import annotations

import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from crio.core.errors import Unavailable

TTL = 60.0
MAX_IN_FLIGHT = 1000
EXEC, ATTACH, PORTFORWARD = "exec", "attach", "portforward"


@dataclass(frozen=True)
class StreamRequest:
    """A prepared streaming request; ``target``: a container ID (exec, attach) or a pod ID (port-forward)."""

    kind: str
    target: str
    command: tuple[str, ...] = ()
    tty: bool = False
    stdin: bool = False
    stdout: bool = False
    stderr: bool = False
    ports: tuple[int, ...] = field(default_factory=tuple)


class TokenCache:
    """Tokens in flight, oldest first."""

    def __init__(
        self, ttl: float = TTL, limit: int = MAX_IN_FLIGHT, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.ttl = ttl
        self.limit = limit
        self.clock = clock
        self._entries: OrderedDict[str, tuple[float, StreamRequest]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def _expire(self) -> None:
        now = self.clock()
        while self._entries:
            token, (deadline, _) = next(iter(self._entries.items()))
            if deadline > now:
                break
            del self._entries[token]

    def insert(self, request: StreamRequest) -> str:
        """Store a request; returns its token. Unavailable when too many are waiting."""
        self._expire()
        if len(self._entries) >= self.limit:
            raise Unavailable(f"too many streaming requests in flight (at most {self.limit})")
        token = secrets.token_urlsafe(16)
        self._entries[token] = (self.clock() + self.ttl, request)
        return token

    def consume(self, kind: str, token: str) -> StreamRequest | None:
        """The request of a live token of this kind, which is used up; None otherwise."""
        self._expire()
        entry = self._entries.pop(token, None)
        if entry is None or entry[1].kind != kind:
            return None
        return entry[1]
