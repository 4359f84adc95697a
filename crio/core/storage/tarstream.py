"""A streaming tar reader that reports headers the way Go's ``archive/tar`` does and keeps the raw bytes.

containers/storage reads layers with Go's ``archive/tar`` (vbatts/tar-split's fork); names, sizes and
ownership must come out the same here, because they end up in tar-split files and layer records that
podman reads. Followed from that reader: USTAR/PAX/GNU/V7 detection by magic, ``prefix`` joined only for
USTAR/PAX, both checksum variants accepted, octal and base-256 numbers, PAX records (``path``, ``linkpath``,
``size``, ``uid``, ``gid``, ``mtime``, ``atime``, ``SCHILY.xattr.*``; an empty value keeps the header's
field), GNU ``L``/``K`` long names, ``'\\0'`` type as a regular file (a directory if the name ends in
``/``), no content for link/symlink/device/fifo/directory headers whatever their size field says, global
PAX headers returned as entries of their own, end of archive at two zero blocks (or one, or none, at the
end of data). Also accepted: ``LIBARCHIVE.xattr.*`` records. Refused with :class:`InvalidArgument`: GNU
sparse files (old and PAX formats), bad checksums, malformed numbers and PAX records, truncated data, and
anything over the limits of :mod:`crio.core.storage.tarlimits` (name length, path depth, size and number of
meta headers before one entry, trailing data, numbers that do not fit 64 bits), checked before the memory
is taken.

Every byte that is not file content (header blocks, meta-header contents, padding, end-of-archive
blocks, trailing data) is collected for the tar-split segments.
"""

from __future__ import annotations

import base64
import urllib.parse
from collections.abc import Callable, Iterator

from crio.core.errors import InvalidArgument
from crio.core.storage.tarlimits import (
    MAX_META,
    MAX_META_HEADERS,
    MAX_META_TOTAL,
    MAX_NAME,
    MAX_TRAILER,
    LimitExceeded,
    check_int64,
    check_name,
    shown,
)

BLOCK = 512
ZERO_BLOCK = bytes(BLOCK)
_MAX_TIME_DIGITS = 19  # seconds that fit int64

# Type flags as integers (the byte at offset 156).
T_AREG, T_REG, T_LINK, T_SYMLINK, T_CHAR, T_BLOCK, T_DIR, T_FIFO, T_CONT = 0, 48, 49, 50, 51, 52, 53, 54, 55
T_PAX, T_GLOBAL, T_LONGNAME, T_LONGLINK, T_SPARSE = 120, 103, 76, 75, 83
HEADER_ONLY = frozenset((T_LINK, T_SYMLINK, T_CHAR, T_BLOCK, T_DIR, T_FIFO))

_USTAR, _GNU, _STAR, _V7 = range(4)


class TarInput:
    """Exact-size reads over a sequence of byte chunks (``next_chunk`` returns ``b""`` at the end)."""

    __slots__ = ("_buf", "_mv", "_next", "_pos", "eof")

    def __init__(self, next_chunk: Callable[[], bytes]) -> None:
        self._next = next_chunk
        self._buf = b""
        self._mv = memoryview(self._buf)
        self._pos = 0
        self.eof = False

    def _fill(self) -> bool:
        if self.eof:
            return False
        data = self._next()  # callers have consumed the current chunk
        if not data:
            self.eof = True
            return False
        self._buf = data
        self._mv = memoryview(data)
        self._pos = 0
        return True

    def read(self, n: int) -> bytes:
        """``n`` bytes, or fewer only at the end of the data."""
        pos = self._pos
        end = pos + n
        if end <= len(self._buf):
            self._pos = end
            return self._buf[pos:end]
        parts = []
        while True:
            available = len(self._buf) - self._pos
            if available >= n:
                parts.append(self._buf[self._pos : self._pos + n])
                self._pos += n
                break
            if available:
                parts.append(self._buf[self._pos :])
                n -= available
            self._buf, self._mv, self._pos = b"", memoryview(b""), 0
            if not self._fill():
                break
        return b"".join(parts)

    def pieces(self, n: int) -> Iterator[memoryview]:
        """Yield ``n`` bytes as views into the chunks (no copy); raises if the data ends first."""
        while n > 0:
            available = len(self._buf) - self._pos
            if not available:
                self._buf, self._mv, self._pos = b"", memoryview(b""), 0
                if not self._fill():
                    raise InvalidArgument("tar stream is truncated (the data ended inside a file)")
                continue
            take = n if n < available else available
            pos = self._pos
            self._pos = pos + take
            n -= take
            yield self._mv[pos : pos + take]

    def rest(self) -> Iterator[bytes]:
        """Everything left, in chunks."""
        if self._pos < len(self._buf):
            yield self._buf[self._pos :]
        self._buf, self._mv, self._pos = b"", memoryview(b""), 0
        while self._fill():
            yield self._buf
            self._buf, self._mv, self._pos = b"", memoryview(b""), 0


class TarEntry:
    """One tar member as Go's reader returns it (meta headers already merged)."""

    __slots__ = (
        "atime_ns",
        "devmajor",
        "devminor",
        "gid",
        "linkname",
        "mode",
        "mtime_ns",
        "name",
        "raw",
        "size",
        "typeflag",
        "uid",
        "xattrs",
    )

    def __init__(self) -> None:
        self.name = b""
        self.linkname = b""
        self.typeflag = T_REG
        self.size = 0  # bytes of content that follow the header
        self.mode = 0
        self.uid = 0
        self.gid = 0
        self.mtime_ns = 0
        self.atime_ns: int | None = None
        self.devmajor = 0
        self.devminor = 0
        self.xattrs: dict[bytes, bytes] | None = None
        self.raw = b""  # the bytes before the content: padding of the previous member and all headers

    def display(self) -> str:
        """The name for messages (quoted; a long one is cut short)."""
        return shown(self.name)


def _bad(msg: str) -> InvalidArgument:
    return InvalidArgument(f"invalid tar stream: {msg}")


def _cstr(field: bytes) -> bytes:
    nul = field.find(0)
    return field if nul < 0 else field[:nul]


def parse_number(field: bytes) -> int:
    """A numeric header field: octal text, or base-256 when the high bit of the first byte is set."""
    if field[0] & 0x80:
        negative = bool(field[0] & 0x40)
        value = int.from_bytes(bytes([field[0] & 0x7F]) + field[1:], "big")
        if negative:  # two's complement over the field width, sign bit included
            value -= 1 << (len(field) * 8 - 1)
        return check_int64(value, "a base-256 numeric field")
    try:
        return int(field.strip(b" \x00") or b"0", 8)
    except ValueError:
        pass  # an embedded NUL (Go stops there), or not a number at all
    text = _cstr(field.strip(b" \x00"))
    if not text:
        return 0
    try:
        return int(text, 8)
    except ValueError:
        raise _bad(f"numeric field {field!r} is not octal") from None


def _checksum_ok(blk: bytes) -> bool:
    try:
        stored = parse_number(blk[148:156])
    except InvalidArgument:
        return False
    unsigned = sum(blk) - sum(blk[148:156]) + 256
    if stored == unsigned:
        return True
    signed = unsigned - 256 * sum(1 for b in blk[:148] + blk[156:] if b > 127)
    return stored == signed


def parse_pax(data: bytes) -> dict[bytes, bytes]:
    """PAX extended header records ``"<len> <key>=<value>\\n"``; later records win."""
    records: dict[bytes, bytes] = {}
    pos = 0
    while pos < len(data):
        space = data.find(b" ", pos)
        if space < 0:
            raise _bad("malformed PAX record (no length)")
        try:
            length = int(data[pos:space])
        except ValueError:
            raise _bad("malformed PAX record length") from None
        end = pos + length
        if length <= 0 or space >= end or end > len(data) or data[end - 1] != 0x0A:
            raise _bad("malformed PAX record")
        key, eq, value = data[space + 1 : end - 1].partition(b"=")
        if not eq or not key:
            raise _bad("malformed PAX record (no key)")
        if key in (b"path", b"linkpath", b"uname", b"gname"):
            if 0 in value:
                raise _bad(f"PAX record {key.decode()} contains a NUL byte")
        elif 0 in key:
            raise _bad("PAX record key contains a NUL byte")
        records[key] = value
        pos = end
    return records


def parse_pax_time(value: bytes) -> int:
    """A PAX time (``"<seconds>[.<fraction>]"``, possibly negative) in nanoseconds."""
    text = value.decode("ascii", "replace")
    negative = text.startswith("-")
    whole, _, frac = text.lstrip("+-").partition(".")
    if not whole.isdigit() or (frac and not frac.isdigit()):
        raise _bad(f"malformed PAX time {text[:40]!r}")
    if len(whole) > _MAX_TIME_DIGITS:
        raise _bad("a PAX time does not fit in 64 bits")
    seconds = check_int64(int(whole), "a PAX time")
    ns = seconds * 1_000_000_000 + int((frac + "000000000")[:9])
    return -ns if negative else ns


def _pax_int(key: bytes, value: bytes) -> int:
    name = key.decode("ascii", "replace")
    try:
        number = int(value)
    except ValueError:
        raise _bad(f"malformed PAX record {name}={value[:40]!r}") from None
    return check_int64(number, f"PAX record {name}")


def _apply_pax(entry: TarEntry, records: dict[bytes, bytes]) -> None:
    xattrs: dict[bytes, bytes] = {}
    schily: dict[bytes, bytes] = {}
    for key, value in records.items():
        if key.startswith(b"GNU.sparse."):
            raise InvalidArgument(f"tar entry {entry.display()}: GNU sparse files are not supported")
        if key.startswith(b"SCHILY.xattr."):
            schily[key[13:]] = value  # an empty value is an xattr with empty content
            continue
        if key.startswith(b"LIBARCHIVE.xattr."):
            name = urllib.parse.unquote_to_bytes(key[17:])
            try:
                xattrs[name] = base64.b64decode(value + b"=" * (-len(value) % 4))
            except ValueError:
                raise _bad(f"malformed PAX record {key.decode('ascii', 'replace')}") from None
            continue
        if not value:
            continue  # Go: an empty value keeps the header's field
        if key == b"path":
            entry.name = value
        elif key == b"linkpath":
            entry.linkname = value
        elif key == b"size":
            entry.size = _pax_int(key, value)
        elif key == b"uid":
            entry.uid = _pax_int(key, value)
        elif key == b"gid":
            entry.gid = _pax_int(key, value)
        elif key == b"mtime":
            entry.mtime_ns = parse_pax_time(value)
        elif key == b"atime":
            entry.atime_ns = parse_pax_time(value)
    xattrs.update(schily)  # SCHILY wins over LIBARCHIVE for the same name
    if xattrs:
        entry.xattrs = xattrs


class TarReader:
    """Iterates over the members of a tar stream read from a :class:`TarInput`."""

    __slots__ = ("_entries", "_inp", "_meta_count", "_meta_total", "pending")

    def __init__(self, inp: TarInput) -> None:
        self._inp = inp
        self.pending = bytearray()  # raw bytes not yet handed out
        self._meta_count = 0  # meta headers read since the last entry
        self._meta_total = 0  # and their padded sizes
        self._entries = 0  # entries returned so far

    def _block(self, what: str) -> bytes:
        blk = self._inp.read(BLOCK)
        if len(blk) != BLOCK:
            raise InvalidArgument(f"tar stream is truncated (the data ended inside {what})")
        return blk

    def _meta(self, size: int, what: str) -> bytes:
        if size < 0 or size > MAX_META:
            raise LimitExceeded(
                f"{self._at()}: {what} of {size} bytes exceeds the meta header size limit ({MAX_META})"
            )
        padded = (size + BLOCK - 1) & ~(BLOCK - 1)
        self._meta_count += 1
        self._meta_total += padded
        if self._meta_count > MAX_META_HEADERS:
            raise LimitExceeded(
                f"{self._at()}: more than {MAX_META_HEADERS} PAX/GNU meta headers before one entry "
                f"exceeds the meta header count limit"
            )
        if self._meta_total > MAX_META_TOTAL:
            raise LimitExceeded(
                f"{self._at()}: the PAX/GNU meta headers before one entry add up to more than "
                f"{MAX_META_TOTAL} bytes, the meta header total size limit"
            )
        data = self._inp.read(padded)
        if len(data) != padded:
            raise InvalidArgument(f"tar stream is truncated (the data ended inside {what})")
        self.pending += data
        return data[:size]

    def next(self) -> TarEntry | None:
        """The next member, or ``None`` at the end of the archive (the end blocks are then in ``pending``)."""
        pax: dict[bytes, bytes] | None = None
        long_name: bytes | None = None
        long_link: bytes | None = None
        pending = self.pending
        self._meta_count = self._meta_total = 0
        while True:
            blk = self._inp.read(BLOCK)
            if len(blk) != BLOCK:
                if not blk and pax is None and long_name is None and long_link is None:
                    return None  # Go accepts an archive that stops at a header boundary
                raise InvalidArgument("tar stream is truncated (the data ended inside a header)")
            pending += blk
            if blk == ZERO_BLOCK:
                second = self._inp.read(BLOCK)
                pending += second
                if second and second != ZERO_BLOCK:
                    raise _bad("a zero block followed by a non-zero block")
                return None
            if not _checksum_ok(blk):
                raise _bad("header checksum mismatch")
            typeflag = blk[156]
            if typeflag in (T_PAX, T_GLOBAL):
                records = parse_pax(self._meta(parse_number(blk[124:136]), "a PAX header"))
                if typeflag == T_GLOBAL:
                    entry = TarEntry()
                    entry.name = self._name(blk)
                    entry.typeflag = T_GLOBAL
                    self._take_raw(entry)
                    return entry
                pax = records
                continue
            if typeflag in (T_LONGNAME, T_LONGLINK):
                what = "a GNU long name" if typeflag == T_LONGNAME else "a GNU long link name"
                size = parse_number(blk[124:136])
                if size > MAX_NAME + 1:  # the name and its NUL
                    raise LimitExceeded(
                        f"{self._at()}: {what} of {size} bytes exceeds the name length limit "
                        f"({MAX_NAME} bytes)"
                    )
                data = _cstr(self._meta(size, what))
                if typeflag == T_LONGNAME:
                    long_name = data
                else:
                    long_link = data
                continue
            entry = self._entry(blk, typeflag)
            if pax:
                _apply_pax(entry, pax)
            if long_name is not None:
                entry.name = long_name
            if long_link is not None:
                entry.linkname = long_link
            check_name(entry.name, "name", entry.name)
            if entry.linkname:
                check_name(entry.linkname, "link name", entry.name, walked=entry.typeflag == T_LINK)
            if entry.typeflag == T_AREG:
                entry.typeflag = T_DIR if entry.name.endswith(b"/") else T_REG
            if entry.typeflag in HEADER_ONLY:
                entry.size = 0
            elif entry.size < 0:
                raise _bad(f"entry {entry.display()} has a negative size")
            self._take_raw(entry)
            return entry

    def _at(self) -> str:
        """Where a refused meta header is, for messages (its entry has no name yet)."""
        return f"invalid tar stream at entry {self._entries + 1}"

    def _take_raw(self, entry: TarEntry) -> None:
        self._entries += 1
        entry.raw = bytes(self.pending)
        self.pending.clear()

    @staticmethod
    def _format(blk: bytes) -> int:
        magic = blk[257:263]
        if magic == b"ustar\x00":
            return _STAR if blk[508:512] == b"tar\x00" else _USTAR
        if magic == b"ustar " and blk[263:265] == b" \x00":
            return _GNU
        return _V7

    def _name(self, blk: bytes) -> bytes:
        name = _cstr(blk[0:100])
        fmt = self._format(blk)
        if fmt == _USTAR:
            prefix = _cstr(blk[345:500])
        elif fmt == _STAR:
            prefix = _cstr(blk[345:476])
        else:
            return name
        return prefix + b"/" + name if prefix else name

    def _entry(self, blk: bytes, typeflag: int) -> TarEntry:
        entry = TarEntry()
        entry.name = self._name(blk)
        entry.linkname = _cstr(blk[157:257])
        entry.typeflag = typeflag
        entry.mode = parse_number(blk[100:108])
        entry.uid = parse_number(blk[108:116])
        entry.gid = parse_number(blk[116:124])
        entry.size = parse_number(blk[124:136])
        entry.mtime_ns = parse_number(blk[136:148]) * 1_000_000_000
        if typeflag == T_SPARSE:
            raise InvalidArgument(f"tar entry {entry.display()}: GNU sparse files are not supported")
        if typeflag in (T_CHAR, T_BLOCK):
            entry.devmajor = parse_number(blk[329:337])
            entry.devminor = parse_number(blk[337:345])
        return entry

    def skip_padding(self, size: int) -> None:
        """Consume the padding after ``size`` bytes of content (kept for the next segment)."""
        pad = -size % BLOCK
        if pad:
            data = self._inp.read(pad)
            if len(data) != pad:
                raise InvalidArgument("tar stream is truncated (the data ended inside padding)")
            self.pending += data

    def trailer(self) -> Iterator[bytes]:
        """After :meth:`next` returned ``None``: the end blocks, then all remaining bytes, in chunks.

        More than ``MAX_TRAILER`` bytes after the end blocks (e.g. a compressed bomb of zeros) is refused.
        """
        if self.pending:
            yield bytes(self.pending)
            self.pending.clear()
        left = MAX_TRAILER
        for chunk in self._inp.rest():
            left -= len(chunk)
            if left < 0:
                raise LimitExceeded(
                    f"invalid tar stream: more than {MAX_TRAILER} bytes of data after the end of the "
                    f"archive exceeds the trailing data limit"
                )
            yield chunk
