"""A zstd frame-structure checker: tells a complete zstd stream from a truncated one.

zstandard's streaming reader returns end-of-data, not an error, when its input stops in the middle of a
frame. :class:`ZstdFrameChecker` follows the frame layout of RFC 8878 (frame header, block headers,
optional checksum; skippable frames) over the compressed bytes as they are read, without decompressing,
so that :meth:`ZstdFrameChecker.finish` can refuse a stream that does not end on a frame boundary. It
costs a few operations per block (blocks are at most 128 KiB).
"""

from __future__ import annotations

from crio.core.errors import InvalidArgument

_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_SKIPPABLE_TAIL = b"\x2a\x4d\x18"  # skippable frames: 0x184D2A50..0x184D2A5F little-endian
_DICT_ID_SIZES = (0, 1, 2, 4)

_MAGIC, _DESCRIPTOR, _HEADER_REST, _BLOCK, _CHECKSUM, _SKIP_SIZE = range(6)


class ZstdFrameChecker:
    """Tracks zstd frame boundaries over a byte stream fed in arbitrary pieces."""

    __slots__ = ("_buf", "_checksum", "_need", "_skip", "_state")

    def __init__(self) -> None:
        self._buf = bytearray()
        self._state = _MAGIC
        self._need = 4
        self._skip = 0
        self._checksum = False

    def feed(self, data: bytes) -> None:
        """Account for the next compressed bytes; raises :class:`InvalidArgument` on a malformed frame."""
        pos, end = 0, len(data)
        while pos < end:
            if self._skip:
                take = min(self._skip, end - pos)
                self._skip -= take
                pos += take
                continue
            take = min(self._need - len(self._buf), end - pos)
            self._buf += data[pos : pos + take]
            pos += take
            if len(self._buf) == self._need:
                self._advance(bytes(self._buf))
                self._buf.clear()

    def _advance(self, field: bytes) -> None:
        state = self._state
        if state == _MAGIC:
            if field == _ZSTD_MAGIC:
                self._state, self._need = _DESCRIPTOR, 1
            elif field[0] & 0xF0 == 0x50 and field[1:] == _SKIPPABLE_TAIL:
                self._state, self._need = _SKIP_SIZE, 4
            else:
                raise InvalidArgument("layer blob is not valid zstd data: unknown frame magic after a frame")
        elif state == _DESCRIPTOR:
            fhd = field[0]
            if fhd & 0x08:
                raise InvalidArgument("layer blob is not valid zstd data: reserved frame header bit set")
            single = (fhd >> 5) & 1
            fcs = (single, 2, 4, 8)[fhd >> 6]
            rest = (0 if single else 1) + _DICT_ID_SIZES[fhd & 3] + fcs
            self._checksum = bool(fhd & 0x04)
            if rest:
                self._state, self._need = _HEADER_REST, rest
            else:
                self._state, self._need = _BLOCK, 3
        elif state == _HEADER_REST:
            self._state, self._need = _BLOCK, 3
        elif state == _BLOCK:
            header = int.from_bytes(field, "little")
            kind = (header >> 1) & 3
            if kind == 3:
                raise InvalidArgument("layer blob is not valid zstd data: reserved block type")
            self._skip = 1 if kind == 1 else header >> 3
            if header & 1:  # last block of the frame
                if self._checksum:
                    self._state, self._need = _CHECKSUM, 4
                else:
                    self._state, self._need = _MAGIC, 4
        elif state == _CHECKSUM:
            self._state, self._need = _MAGIC, 4
        else:  # _SKIP_SIZE
            self._skip = int.from_bytes(field, "little")
            self._state, self._need = _MAGIC, 4

    def finish(self) -> None:
        """Raise :class:`InvalidArgument` unless the bytes fed so far end exactly after a complete frame."""
        if self._state != _MAGIC or self._buf or self._skip:
            raise InvalidArgument("zstd stream is truncated (the blob ended inside a frame)")
