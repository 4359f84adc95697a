"""Fuzz the SPDY session layer (crio.core.streaming.spdysession) over a fake transport: whatever the client
sends, ``run`` ends cleanly and the stream handlers (echoing readers, discarded streams) see only data, end
of stream or StreamClosed."""

from __future__ import annotations

import asyncio
import time

from hypothesis import given, settings
from hypothesis import strategies as st

from crio.core.streaming.spdysession import SpdySession, SpdyStream, StreamClosed
from tests.fuzz import wire
from tests.fuzz.harness import counted, mutated_bytes, split_points


class FakeTransport:
    """Hands the session the client's chunks, then the end; keeps what the session writes."""

    def __init__(self, chunks: list[bytes]) -> None:
        self._chunks = list(chunks)
        self.written: list[bytes] = []
        self.last_activity = time.monotonic()

    async def read(self) -> bytes:
        """The next chunk (b"" at the end)."""
        await asyncio.sleep(0)
        return self._chunks.pop(0) if self._chunks else b""

    def write(self, buffers: list[bytes]) -> None:
        """Keep the frames."""
        self.written += buffers

    async def drain(self) -> None:
        """Never full."""

    async def end_output(self, timeout: float) -> None:
        """Nothing to flush."""

    async def wait_client_end(self, timeout: float) -> None:
        """The client is done when its chunks are."""

    async def close(self, linger: float = 0.0) -> None:
        """Nothing to close."""


async def _echo(stream: SpdyStream) -> None:
    try:
        while data := await stream.read():
            await stream.write(data[:100])
        stream.close()
    except StreamClosed:
        pass


async def _serve(chunks: list[bytes]) -> None:
    tasks: list[asyncio.Task[None]] = []

    def on_stream(stream: SpdyStream) -> None:
        if stream.stream_type in ("stdin", "data"):
            tasks.append(asyncio.ensure_future(_echo(stream)))
        else:
            stream.discard_input()

    session = SpdySession(FakeTransport(chunks), on_stream)
    await asyncio.wait_for(session.run(), 10)
    await session.close(linger=0)
    done, _ = await asyncio.wait(tasks, timeout=10) if tasks else (set(), set())
    assert len(done) == len(tasks), "a stream handler hangs after the session ended"
    for task in done:
        task.result()  # re-raises anything but StreamClosed


session_bytes = st.one_of(wire.spdy_session(), wire.spdy_session().flatmap(mutated_bytes))


# An event loop per example makes this target ~10x slower than the framing ones: a quarter of the examples.
@settings(max_examples=max(1, settings().max_examples // 4))
@given(chunks=session_bytes.flatmap(split_points))
@counted
def test_spdy_session_layer(chunks: list[bytes]) -> None:
    """Plausible and mutated sessions, cut into reads, through a SpdySession with echoing streams."""
    asyncio.run(_serve(chunks))
