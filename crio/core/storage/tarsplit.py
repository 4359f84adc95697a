"""tar-split metadata: the gzipped JSON-lines file that lets a layer's tar stream be rebuilt byte for byte.

The format is vbatts/tar-split's ``tar/storage`` packer, which containers/storage writes to
``<driver>-layers/<id>.tar-split.gz`` and reads back (``asm.NewOutputTarStream``) whenever podman or
skopeo export a layer. One JSON object a line, keys in Go's field order, ``omitempty`` honoured::

    {"type":2,"payload":"<base64 of raw tar bytes>","position":0}
    {"type":1,"name":"etc/passwd","size":1234,"payload":"<base64 of 8-byte CRC-64/ISO>","position":1}

Type 2 (segment) entries carry raw bytes (headers, PAX/GNU blocks, padding, the end-of-archive blocks,
trailing bytes); type 1 (file) entries name one tar header's content, whose bytes are read back from the
layer directory. A name that is not valid UTF-8 goes into ``name_raw`` (base64) instead of ``name``; a
file entry of size 0 has ``"payload":null`` and no ``size``.
"""

from __future__ import annotations

import base64
import binascii
import gzip
import json
import os
import zlib
from collections.abc import Callable, Iterator
from typing import BinaryIO

from fastcrc import crc64

from crio.core.errors import FailedPrecondition
from crio.core.storage.fastzlib import FAST_LEVEL, zlib_impl

_FLUSH_AT = 1 << 20
_READ_CHUNK = 1 << 20
_b64 = binascii.b2a_base64


def crc64_iso(data: bytes | memoryview, previous: int | None = None) -> int:
    """CRC-64/ISO as Go's ``crc64.ISO`` computes it; pass the previous result to continue a running sum."""
    if previous is None:
        return crc64.go_iso(data)
    return crc64.go_iso(data, initial=previous)


def crc_payload(crc: int) -> str:
    """The ``payload`` of a file entry: the CRC's 8 big-endian bytes, base64."""
    return base64.b64encode(crc.to_bytes(8, "big")).decode("ascii")


class TarSplitWriter:
    """Writes tar-split entries, gzip-compressed, to an open binary file (which it does not close)."""

    __slots__ = ("_buffered", "_lines", "_out", "_position", "_z")

    def __init__(self, out: BinaryIO, level: int = FAST_LEVEL) -> None:
        self._out = out
        self._z = zlib_impl.compressobj(level, zlib_impl.DEFLATED, 31)  # wbits 31: a gzip member
        self._lines: list[bytes] = []
        self._buffered = 0
        self._position = 0

    def segment(self, raw: bytes | bytearray) -> None:
        """Add a type 2 entry holding ``raw`` verbatim (nothing for empty input)."""
        if raw:
            self._add(
                b'{"type":2,"payload":"%s","position":%d}\n' % (_b64(raw, newline=False), self._position)
            )
            self._position += 1

    def file(self, name: bytes, size: int, crc: int | None, raw: bytes = b"") -> None:
        """Add a type 1 entry for a header named ``name`` whose content is ``size`` bytes with ``crc``.

        ``raw``, if given, is added first as a segment (the header bytes before that content).
        """
        position = self._position
        if raw:
            seg = b'{"type":2,"payload":"%s","position":%d}\n' % (_b64(raw, newline=False), position)
            position += 1
        else:
            seg = b""
        try:
            text = name.decode("utf-8")
        except UnicodeDecodeError:
            key = b'"name_raw":"%s",' % _b64(name, newline=False)
        else:
            key = b'"name":%s,' % json.dumps(text).encode("ascii") if text else b""
        if size > 0 and crc is not None:
            payload = b'"size":%d,"payload":"%s"' % (size, _b64(crc.to_bytes(8, "big"), newline=False))
        else:
            payload = b'"payload":null'
        self._position = position + 1
        self._add(b'%s{"type":1,%s%s,"position":%d}\n' % (seg, key, payload, position))

    def _add(self, line: bytes) -> None:
        self._lines.append(line)
        self._buffered += len(line)
        if self._buffered >= _FLUSH_AT:
            self._flush()

    def _flush(self) -> None:
        if self._lines:
            self._out.write(self._z.compress(b"".join(self._lines)))
            self._lines.clear()
            self._buffered = 0

    def close(self) -> None:
        """Write everything buffered and the gzip trailer."""
        self._flush()
        self._out.write(self._z.flush())
        self._out.flush()


def _entry_name(entry: dict[str, object], number: int) -> str:
    raw = entry.get("name_raw")
    if raw is not None and raw != "":
        return os.fsdecode(_b64decode(raw, number))
    name = entry.get("name")
    return name if isinstance(name, str) else ""


def _b64decode(text: object, number: int) -> bytes:
    if not isinstance(text, str):
        raise FailedPrecondition(f"tar-split line {number}: a payload or name is not a string")
    try:
        return base64.b64decode(text, validate=True)
    except ValueError:
        raise FailedPrecondition(f"tar-split line {number}: bad base64") from None


def _lines(tar_split: BinaryIO) -> Iterator[tuple[int, dict[str, object]]]:
    """The tar-split file's entries, numbered; a file that is not gzip or a line that is not a JSON object
    raises :class:`FailedPrecondition`."""
    try:
        with gzip.GzipFile(fileobj=tar_split, mode="rb") as lines:
            for number, line in enumerate(lines, 1):
                if not line.strip():
                    continue
                try:
                    entry = json.loads(line)
                except (ValueError, RecursionError) as exc:
                    raise FailedPrecondition(f"tar-split line {number} is not JSON: {exc}") from None
                if not isinstance(entry, dict):
                    raise FailedPrecondition(f"tar-split line {number} is not a JSON object")
                yield number, entry
    except (OSError, EOFError, zlib.error) as exc:  # gzip.BadGzipFile is an OSError
        raise FailedPrecondition(f"tar-split file is not valid gzip: {exc}") from None


def reassemble(tar_split: BinaryIO, open_file: Callable[[str], BinaryIO]) -> Iterator[bytes]:
    """Rebuild a layer's uncompressed tar stream from its gzipped tar-split and the layer's files.

    ``open_file`` gets each file entry's name as stored (a name that was not UTF-8 comes decoded with
    ``os.fsdecode``, so ``os.fsencode`` gives the original bytes back) and returns a readable binary file;
    exactly ``size`` bytes are read from it and their CRC-64 checked. A missing or short file, a CRC
    mismatch or a malformed tar-split file raises :class:`FailedPrecondition` naming the entry or line.
    """
    for number, entry in _lines(tar_split):
        kind = entry.get("type")
        if kind == 2:
            payload = entry.get("payload")
            if payload:
                yield _b64decode(payload, number)
        elif kind == 1:
            size = entry.get("size") or 0
            if not isinstance(size, int) or isinstance(size, bool) or size < 0:
                raise FailedPrecondition(f"tar-split line {number}: size {size!r} is not a byte count")
            if size > 0:
                payload = entry.get("payload")
                expected = _b64decode(payload, number) if payload else b""
                yield from _file_content(_entry_name(entry, number), size, expected, open_file)
        else:
            raise FailedPrecondition(f"tar-split line {number} has unknown entry type {kind!r}")


def _file_content(
    name: str, size: int, expected: bytes, open_file: Callable[[str], BinaryIO]
) -> Iterator[bytes]:
    try:
        handle = open_file(name)
    except OSError as exc:
        raise FailedPrecondition(f"layer file {name!r} named by tar-split cannot be opened: {exc}") from None
    with handle:
        crc: int | None = None
        left = size
        while left > 0:
            chunk = handle.read(min(left, _READ_CHUNK))
            if not chunk:
                raise FailedPrecondition(f"layer file {name!r} is shorter than its {size} bytes in tar-split")
            crc = crc64_iso(chunk, crc)
            left -= len(chunk)
            yield chunk
    if crc is None or crc.to_bytes(8, "big") != expected:
        raise FailedPrecondition(f"layer file {name!r} does not match its tar-split checksum")
