"""Port forwarding over a SPDY session: every complete stream pair becomes one TCP connection in the pod.

Data the client sends on the data stream goes to the connection; what the connection answers goes back on
the data stream, as fast as the client takes it. When the client finishes the data stream, the
connection's sending side is shut down; when the connection ends, the data stream and then the error
stream are finished. A failure to connect is reported on the error stream. A stream whose partner does
not arrive within :data:`PAIR_TIMEOUT` is reset.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Coroutine
from typing import Any

from crio.core.streaming import portforward as pf
from crio.core.streaming.dial import connect_local
from crio.core.streaming.spdysession import SpdyStream, StreamClosed

log = logging.getLogger(__name__)

PAIR_TIMEOUT = 30.0
READ_CHUNK = 256 * 1024


class PortForwarder:
    """Serves the port-forward streams of one session for one pod."""

    def __init__(self, pod_id: str, netns_path: str) -> None:
        self.pod_id = pod_id
        self.netns_path = netns_path
        self.pairing: pf.Pairing[SpdyStream] = pf.Pairing()
        self.tasks: set[asyncio.Task[None]] = set()

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def on_stream(self, stream: SpdyStream) -> None:
        """The session's ``on_stream`` callback."""
        try:
            pair = self.pairing.add(stream.id, stream.headers, stream)
        except pf.BadStream as exc:
            log.info("streaming: port-forward for pod %s: %s", self.pod_id, exc)
            stream.reset()
            return
        if stream.stream_type == pf.ERROR:
            stream.discard_input()
        if pair is None:
            request_id = next(rid for rid, p in self.pairing.pending.items() if stream in (p.data, p.error))
            self._spawn(self._expire(request_id))
        else:
            self._spawn(self._forward(pair))

    async def _expire(self, request_id: str) -> None:
        await asyncio.sleep(PAIR_TIMEOUT)
        pair = self.pairing.drop(request_id)
        if pair is not None:
            log.info("streaming: port-forward request %s: no matching stream arrived", request_id)
            for stream in (pair.data, pair.error):
                if stream is not None:
                    stream.reset()

    async def _forward(self, pair: pf.Pair[SpdyStream]) -> None:
        data, error = pair.data, pair.error
        assert data is not None and error is not None
        try:
            sock = await connect_local(self.netns_path, pair.port)
        except OSError as exc:
            reason = exc.strerror or str(exc)
            log.info("streaming: port-forward to pod %s port %d: %s", self.pod_id, pair.port, reason)
            with contextlib.suppress(StreamClosed):
                await error.write(pf.error_message(pair.port, self.pod_id, reason))
            error.close()
            data.close()
            return
        try:
            upload = asyncio.ensure_future(_upload(data, sock))
            await _download(sock, data)
            data.close()
            if not upload.done():  # the client may keep sending until it sees our FIN (or resets)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(upload), PAIR_TIMEOUT)
            upload.cancel()
            with contextlib.suppress(asyncio.CancelledError, OSError, StreamClosed):
                await upload
        finally:
            sock.close()
            error.close()

    async def close(self) -> None:
        """Stop every forwarded connection."""
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


async def _upload(stream: SpdyStream, sock: socket.socket) -> None:
    """Client → connection; shuts the connection's sending side when the client finishes."""
    loop = asyncio.get_running_loop()
    while data := await stream.read():
        await loop.sock_sendall(sock, data)
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_WR)


async def _download(sock: socket.socket, stream: SpdyStream) -> None:
    """Connection → client, until the connection ends (or the client resets the stream)."""
    loop = asyncio.get_running_loop()
    with contextlib.suppress(ConnectionError, OSError):
        while data := await loop.sock_recv(sock, READ_CHUNK):
            await stream.write(data)
