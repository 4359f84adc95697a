"""Streaming decompression of a layer blob on a worker thread, with the digests of both byte streams.

A :class:`ChunkPipe` reads the blob in large blocks, hashes and counts the compressed bytes, decompresses
(gzip, zstd, bzip2, xz or none, detected from the magic bytes as containers/storage does), hashes and
counts the uncompressed bytes and hands them to the consumer in bounded chunks through a small queue, so
decompression and hashing overlap with the consumer's file-system work on another core (zlib, ISA-L,
zstd and hashlib release the GIL). Memory stays bounded: no codec is ever asked for more than one chunk of
output at a time, so a decompression bomb costs time, not memory.

Corrupt or truncated compressed data raises :class:`InvalidArgument` naming the problem; errors reading
the blob itself propagate unchanged.
"""

from __future__ import annotations

import bz2
import hashlib
import lzma
import queue
import threading
import zlib
from collections.abc import Callable, Iterator
from typing import IO, Any, BinaryIO, cast

import zstandard

from crio.core.errors import DeadlineExceeded, InvalidArgument
from crio.core.storage.fastzlib import zlib_impl
from crio.core.storage.zstdframes import ZstdFrameChecker

_inflate_mod = zlib_impl

COMPRESSION_NONE, COMPRESSION_BZIP2, COMPRESSION_GZIP, COMPRESSION_XZ, COMPRESSION_ZSTD = 0, 1, 2, 3, 4
COMPRESSION_NAMES = {0: "uncompressed", 1: "bzip2", 2: "gzip", 3: "xz", 4: "zstd"}

CHUNK = 1 << 20
_GZIP_MAGIC = b"\x1f\x8b"
_MAGICS = (
    (_GZIP_MAGIC, COMPRESSION_GZIP),
    (b"\x28\xb5\x2f\xfd", COMPRESSION_ZSTD),
    (b"\x42\x5a\x68", COMPRESSION_BZIP2),
    (b"\xfd\x37\x7a\x58\x5a\x00", COMPRESSION_XZ),
)
_CODEC_ERRORS: tuple[type[BaseException], ...] = (
    zlib.error,
    _inflate_mod.error,
    zstandard.ZstdError,
    lzma.LZMAError,
)
_EOF = object()


class BlobReadError(Exception):
    """Reading the blob failed (``__cause__`` is the original error): not a problem of the layer's content."""


def detect_compression(head: bytes) -> int:
    """The containers/storage compression number for a stream starting with ``head``."""
    for magic, kind in _MAGICS:
        if head.startswith(magic):
            return kind
    return COMPRESSION_NONE


class _Source:
    """The blob as read: hashes and counts every byte; ``read`` is what zstandard's reader pulls from."""

    def __init__(self, blob: BinaryIO, stop: threading.Event) -> None:
        self.blob = blob
        self.stop = stop
        self.hash = hashlib.sha256()
        self.size = 0
        self.pending = b""
        self.frames: ZstdFrameChecker | None = None

    def read(self, size: int = CHUNK) -> bytes:
        if self.pending:
            data, self.pending = self.pending, b""
            return data
        if self.stop.is_set():
            return b""
        data = self.blob.read(max(size, CHUNK))
        if data:
            self.hash.update(data)
            self.size += len(data)
            if self.frames is not None:
                self.frames.feed(data)
        return data

    def head(self) -> bytes:
        """Read (and keep for the decoder) enough leading bytes to detect the compression."""
        while len(self.pending) < 6:
            data = self.read(CHUNK)
            if not data:
                break
            self.pending += data
        return self.pending

    def chunks(self) -> Iterator[bytes]:
        while data := self.read(CHUNK):
            yield data


def _gzip(src: _Source) -> Iterator[bytes]:
    d = _inflate_mod.decompressobj(31)
    in_member = False
    for data in src.chunks():
        while data:
            if not in_member:  # gzip allows concatenated members; Go refuses anything else after one
                if not _GZIP_MAGIC.startswith(data[:2]):
                    raise InvalidArgument("layer blob has data after its gzip stream that is not gzip")
                in_member = True
            out = d.decompress(data, CHUNK)
            if out:
                yield out
            data = d.unconsumed_tail
            while len(out) == CHUNK and not data and not d.eof:  # output pending without further input
                out = d.decompress(b"", CHUNK)
                if out:
                    yield out
            if d.eof:
                data = d.unused_data + data
                d = _inflate_mod.decompressobj(31)
                in_member = False
    if in_member:
        raise InvalidArgument("gzip stream is truncated (the blob ended inside a compressed member)")


def _zstd(src: _Source) -> Iterator[bytes]:
    src.frames = ZstdFrameChecker()
    src.frames.feed(src.pending)
    reader = zstandard.ZstdDecompressor().stream_reader(
        cast(IO[bytes], src), read_size=CHUNK, read_across_frames=True
    )
    while out := reader.read(CHUNK):
        yield out
    src.frames.finish()


def _lzma_like(src: _Source, make: Callable[[], Any], name: str) -> Iterator[bytes]:
    d = make()
    in_stream = False
    for data in src.chunks():
        while True:
            if data:
                in_stream = True
            try:
                out = d.decompress(data, CHUNK)
            except OSError as exc:  # bz2 reports corrupt data as OSError
                raise InvalidArgument(f"layer blob is not valid {name} data: {exc}") from None
            data = b""
            if out:
                yield out
            if d.eof:
                data = d.unused_data
                in_stream = False
                d = make()
                if not data:
                    break
            elif d.needs_input:
                break
    if in_stream:
        raise InvalidArgument(f"{name} stream is truncated (the blob ended inside a compressed stream)")


def _decoder(kind: int, src: _Source) -> Iterator[bytes]:
    if kind == COMPRESSION_GZIP:
        return _gzip(src)
    if kind == COMPRESSION_ZSTD:
        return _zstd(src)
    if kind == COMPRESSION_BZIP2:
        return _lzma_like(src, bz2.BZ2Decompressor, "bzip2")
    if kind == COMPRESSION_XZ:
        return _lzma_like(src, lzma.LZMADecompressor, "xz")
    return src.chunks()


class ChunkPipe:
    """Decompresses ``blob`` on a worker thread; :meth:`next_chunk` returns the uncompressed bytes in order.

    The digests and sizes are valid once :meth:`next_chunk` has returned ``b""`` (end of the blob).
    """

    def __init__(self, blob: BinaryIO, cancel: threading.Event | None = None, depth: int = 8) -> None:
        self._stop = threading.Event()
        self._src = _Source(blob, self._stop)
        self._cancel = cancel
        self._queue: queue.Queue[object] = queue.Queue(maxsize=depth)
        self._thread = threading.Thread(target=self._run, name="layer-decompress", daemon=True)
        self._done = False
        self.compression = COMPRESSION_NONE
        self.diff_hash = hashlib.sha256()
        self.diff_size = 0

    def start(self) -> None:
        """Start the worker thread."""
        self._thread.start()

    @property
    def compressed_digest(self) -> str:
        """``sha256:<hex>`` of the blob's bytes."""
        return "sha256:" + self._src.hash.hexdigest()

    @property
    def compressed_size(self) -> int:
        """Number of bytes read from the blob."""
        return self._src.size

    def _put(self, item: object) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _run(self) -> None:
        item: object
        try:
            self.compression = detect_compression(self._src.head())
            if self.compression == COMPRESSION_NONE:
                self.diff_hash = self._src.hash  # the same bytes: hash them once
                for out in self._src.chunks():
                    self.diff_size += len(out)
                    if not self._put(out):
                        return
            else:
                diff_hash = self.diff_hash
                for out in _decoder(self.compression, self._src):
                    diff_hash.update(out)
                    self.diff_size += len(out)
                    if not self._put(out):
                        return
            item = _EOF
        except _CODEC_ERRORS as exc:
            name = COMPRESSION_NAMES[self.compression]
            item = InvalidArgument(f"layer blob is not valid {name} data: {exc}")
        except BaseException as exc:
            item = exc
        self._put(item)

    def next_chunk(self) -> bytes:
        """The next block of uncompressed bytes, ``b""`` at the end.

        Raises the worker's :class:`InvalidArgument` for corrupt data, else :class:`BlobReadError`.
        """
        if self._done:
            return b""
        cancel = self._cancel
        while True:
            try:
                item = self._queue.get(timeout=0.1)
                break
            except queue.Empty:
                if cancel is not None and cancel.is_set():
                    raise DeadlineExceeded("pull cancelled") from None
        if item is _EOF:
            self._done = True
            return b""
        if isinstance(item, BaseException):
            self._done = True
            if isinstance(item, InvalidArgument):
                raise item
            raise BlobReadError(f"reading the layer blob failed: {item}") from item
        assert isinstance(item, bytes)
        return item

    def close(self) -> None:
        """Stop the worker (it ends at its next chunk; a read blocked on the blob ends when it returns)."""
        self._stop.set()
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        self._thread.join(timeout=1.0)
