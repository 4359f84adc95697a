"""A corpus of hostile image layers and images, built in code (issue 14).

Every layer is made by hand, header by header (Python's ``tarfile`` refuses to write most of these), and
streamed through its compressor so that a gigabyte of uncompressed bombs never sits in memory. Each
:class:`Case` is one image: the blob served for its single layer, the descriptor (digest, size) the
manifest promises, the diff ID its config promises, and what a pull must answer: INVALID_ARGUMENT with a
message containing ``expect``. :func:`corpus` lists them; :func:`serve` makes the real HTTP registry of
``tests/integration/fake_registry.py`` serve them (for the integration test and ``bench/hostile_pull.py``);
:class:`PeakRss` measures a daemon's peak RSS growth meanwhile.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import io
import json
import os
import threading
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import zstandard

from bench.common import status_kib

BLOCK = 512
MIB = 1 << 20
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
LAYER_TYPES = {
    "gzip": "application/vnd.oci.image.layer.v1.tar+gzip",
    "zstd": "application/vnd.oci.image.layer.v1.tar+zstd",
    "none": "application/vnd.oci.image.layer.v1.tar",
}


def digest(data: bytes) -> str:
    """``sha256:<hex>`` of ``data``."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


# ------------------------------------------------------------------------------------------ tar pieces


def _octal(value: int, width: int) -> bytes:
    return b"%0*o\x00" % (width - 1, value)


def base256(value: int, width: int) -> bytes:
    """A base-256 numeric field (high bit set) holding ``value`` (which may not fit)."""
    raw = (value % (1 << (width * 8 - 1))).to_bytes(width, "big")
    return bytes([raw[0] | 0x80]) + raw[1:]


def header(
    name: bytes,
    typeflag: bytes = b"0",
    size: int = 0,
    *,
    linkname: bytes = b"",
    mode: int = 0o644,
    mtime: bytes | None = None,
    devmajor: bytes | None = None,
    checksum_delta: int = 0,
) -> bytes:
    """One USTAR header block; ``mtime``/``devmajor`` may be raw field bytes (e.g. :func:`base256`)."""
    blk = bytearray(BLOCK)
    blk[0:100] = name[:100].ljust(100, b"\x00")
    blk[100:108] = _octal(mode, 8)
    blk[108:116] = _octal(0, 8)
    blk[116:124] = _octal(0, 8)
    blk[124:136] = _octal(size, 12)
    blk[136:148] = mtime if mtime is not None else _octal(1_600_000_000, 12)
    blk[156:157] = typeflag
    blk[157:257] = linkname[:100].ljust(100, b"\x00")
    blk[257:265] = b"ustar\x0000"
    blk[329:337] = devmajor if devmajor is not None else _octal(0, 8)
    blk[337:345] = _octal(0, 8)
    blk[148:156] = b" " * 8
    blk[148:156] = b"%06o\x00 " % (sum(blk) + checksum_delta)
    return bytes(blk)


def pad(data: bytes) -> bytes:
    """``data`` padded to whole blocks."""
    return data + bytes(-len(data) % BLOCK)


def pax_record(key: bytes, value: bytes) -> bytes:
    """One PAX record ``"<len> key=value\\n"``."""
    body = b" " + key + b"=" + value + b"\n"
    length = len(body) + 1
    while len(str(length)) + len(body) != length:
        length += 1
    return str(length).encode() + body


def pax(records: bytes) -> bytes:
    """A PAX extended header (``x``) and its content."""
    return header(b"PaxHeaders/x", b"x", len(records)) + pad(records)


def member(name: bytes, content: bytes = b"", typeflag: bytes = b"0", **fields: object) -> bytes:
    """A plain member: header and padded content (``name`` over 100 bytes goes into a PAX header)."""
    meta = pax(pax_record(b"path", name)) if len(name) > 100 else b""
    return meta + header(name, typeflag, len(content), **fields) + pad(content)  # type: ignore[arg-type]


END = bytes(2 * BLOCK)


# ------------------------------------------------------------------------------------------ streaming


class Blob:
    """A layer built from a stream of tar pieces: its compressed bytes, its DiffID and sizes."""

    def __init__(self, pieces: Iterable[bytes], compression: str = "gzip", window_log: int = 0) -> None:
        tar_hash = hashlib.sha256()
        self.diff_size = 0
        out = io.BytesIO()
        sink = _compressor(out, compression, window_log)
        for piece in pieces:
            tar_hash.update(piece)
            self.diff_size += len(piece)
            sink.write(piece)
        sink.close()
        self.data = out.getvalue()
        self.diff_id = "sha256:" + tar_hash.hexdigest()
        self.compression = compression


class _Gzip:
    def __init__(self, out: io.BytesIO) -> None:
        self.out, self.z = out, zlib.compressobj(6, zlib.DEFLATED, 31)

    def write(self, data: bytes) -> None:
        self.out.write(self.z.compress(data))

    def close(self) -> None:
        self.out.write(self.z.flush())


class _Plain:
    def __init__(self, out: io.BytesIO) -> None:
        self.write = out.write

    def close(self) -> None:
        pass


def _compressor(
    out: io.BytesIO, compression: str, window_log: int
) -> _Gzip | _Plain | zstandard.ZstdCompressionWriter:
    if compression == "gzip":
        return _Gzip(out)
    if compression == "zstd" and window_log:  # a frame that declares this window (no content size)
        params = zstandard.ZstdCompressionParameters(
            window_log=window_log, compression_level=3, write_content_size=False
        )
        return zstandard.ZstdCompressor(compression_params=params).stream_writer(out, closefd=False)
    if compression == "zstd":
        return zstandard.ZstdCompressor(level=3).stream_writer(out, closefd=False)
    return _Plain(out)


def zeros(total: int, chunk: int = 4 * MIB) -> Iterator[bytes]:
    """``total`` zero bytes in chunks."""
    block = bytes(chunk)
    while total > 0:
        yield block[: min(chunk, total)]
        total -= chunk


# ------------------------------------------------------------------------------------------ the layers


def pax_chain(count: int = 1200, each: int = MIB) -> Iterator[bytes]:
    """``count`` consecutive PAX headers of ``each`` bytes, then one small file (the issue's first image)."""
    filler = pax(pax_record(b"comment", b"x" * (each - 20)))  # content just under ``each`` bytes
    for _ in range(count):
        yield filler
    yield member(b"small", b"hi\n")
    yield END


def deep_pax_path(levels: int = 32_000) -> Iterator[bytes]:
    """One PAX ``path`` naming a file ``levels`` directories deep (the issue's second image)."""
    yield member(b"a/" * levels + b"f", b"x")
    yield END


def deep_short_path(levels: int = 300) -> Iterator[bytes]:
    """A name of ordinary length that is ``levels`` components deep."""
    yield member(b"d/" * levels + b"f", b"x")
    yield END


def gnu_long_name(size: int = MIB) -> Iterator[bytes]:
    """A GNU ``L`` long-name header of ``size`` bytes."""
    yield header(b"././@LongLink", b"L", size) + pad(b"n" * size)
    yield member(b"short", b"x")
    yield END


def long_link(size: int = 8192) -> Iterator[bytes]:
    """A symlink whose PAX ``linkpath`` is ``size`` bytes."""
    yield pax(pax_record(b"linkpath", b"t" * size)) + header(b"link", b"2")
    yield END


def big_meta(size: int = 2 * MIB) -> Iterator[bytes]:
    """One PAX header larger than Go's 1 MiB limit."""
    yield pax(pax_record(b"comment", b"c" * size))
    yield member(b"f", b"x")
    yield END


def many_entries(count: int) -> Iterator[bytes]:
    """``count`` AUFS metadata entries (``.wh..wh.*``, never written to disk): bookkeeping only."""
    for number in range(count):
        yield header(b".wh..wh.x%d" % number)
    yield END


def huge_mtime() -> Iterator[bytes]:
    """An entry with a base-256 ``mtime`` of 2**90 (too large for 64 bits)."""
    yield header(b"f", mtime=base256(1 << 90, 12))
    yield END


def huge_devmajor() -> Iterator[bytes]:
    """A device node with a base-256 major number of 2**61 (the kernel's are 32 bits)."""
    yield header(b"dev", b"3", mode=0o600, devmajor=base256(1 << 61, 8))
    yield END


def huge_pax_time() -> Iterator[bytes]:
    """A PAX ``mtime`` of 5,000 digits."""
    yield pax(pax_record(b"mtime", b"9" * 5000)) + header(b"f")
    yield END


def bad_checksum() -> Iterator[bytes]:
    """A header whose checksum is off by one."""
    yield header(b"f", checksum_delta=1)
    yield END


def zero_bomb(total: int) -> Iterator[bytes]:
    """A small valid archive followed by ``total`` zero bytes (compressed, a bomb of trailing data)."""
    yield member(b"f", b"x")
    yield from zeros(total)


def file_bomb(total: int) -> Iterator[bytes]:
    """One file of ``total`` zero bytes."""
    yield header(b"big", size=total)
    yield from zeros(total)
    yield END


def dir_names(total: int, name_len: int = 4000) -> Iterator[bytes]:
    """Directories with ``name_len``-byte names until their names add up to ``total`` bytes."""
    stem = b"/".join([b"p" * 250] * (name_len // 251))
    for number in range(total // len(stem) + 1):
        yield member(stem + b"/%020d/" % number, typeflag=b"5", mode=0o755)
    yield END


def hardlink_escape() -> Iterator[bytes]:
    """A hard link whose target climbs out of the layer."""
    yield header(b"passwd", b"1", linkname=b"../../../../etc/passwd")
    yield END


def symlink_escape() -> Iterator[bytes]:
    """A symlink to ``/`` and then a file written through it."""
    yield header(b"evil", b"2", linkname=b"/")
    yield member(b"evil/tmp/crio-hostile-escape", b"x")
    yield END


def whiteout_through_symlink() -> Iterator[bytes]:
    """A symlink to ``/etc`` and then a whiteout of ``passwd`` through it."""
    yield header(b"etc", b"2", linkname=b"/etc")
    yield header(b"etc/.wh.passwd")
    yield END


def whiteout_dotdot() -> Iterator[bytes]:
    """A whiteout named ``.wh..`` (it would delete its own directory's parent entry)."""
    yield header(b"d/.wh..")
    yield END


def truncated_tar() -> Iterator[bytes]:
    """A file header promising more content than the stream has."""
    yield header(b"f", size=10_000) + b"x" * 3000


def large_plain_then_deep() -> Iterator[bytes]:
    """A 17 MiB file, then a too-deep name: uncompressed, so it is extracted in the child process."""
    yield header(b"big", size=17 * MIB)
    yield from zeros(17 * MIB)
    yield from deep_short_path()


# ------------------------------------------------------------------------------------------ the images


@dataclass
class Case:
    """One hostile image: a single-layer image whose layer blob (or its promises) is hostile."""

    name: str
    what: str
    expect: str  # a substring of the INVALID_ARGUMENT message
    build: Callable[[], Blob]
    mangle: str = ""  # "truncate", "garbage", "corrupt", "size", "short", "digest", "diff_id"

    @functools.cached_property
    def image(self) -> Image:
        """The image as served (built on first use)."""
        return Image(self.build(), self.mangle)


class Image:
    """Manifest, config and blobs of one single-layer image, with the promises ``mangle`` breaks."""

    def __init__(self, blob: Blob, mangle: str = "") -> None:
        data = blob.data
        if mangle == "truncate":
            data = data[: len(data) // 2]
        elif mangle == "garbage":
            data = data + b"not gzip at all"
        elif mangle == "corrupt":
            data = data[:4] + bytes(b ^ 0x5A for b in data[4:64]) + data[64:]
        diff_id = blob.diff_id if mangle != "diff_id" else digest(b"another layer")
        layer_digest, layer_size = digest(data), len(data)
        if mangle == "size":
            layer_size -= 1000  # the registry serves more than the descriptor promises
        elif mangle == "short":
            layer_size += 1000  # and here less
        elif mangle == "digest":
            layer_digest = digest(data + b"x")  # served under a digest it does not have
        config = json.dumps(
            {
                "architecture": "amd64",
                "os": "linux",
                "config": {"Cmd": ["/bin/sh"]},
                "rootfs": {"type": "layers", "diff_ids": [diff_id]},
            }
        ).encode()
        layer = {"mediaType": LAYER_TYPES[blob.compression], "digest": layer_digest, "size": layer_size}
        self.manifest = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": {"mediaType": OCI_CONFIG, "digest": digest(config), "size": len(config)},
                "layers": [layer],
            }
        ).encode()
        self.media_type = OCI_MANIFEST
        self.blobs = {digest(config): config, layer_digest: data}
        self.layer_digest = layer_digest


def corpus() -> list[Case]:
    """Every hostile image, with what a pull of it must answer (INVALID_ARGUMENT containing ``expect``)."""
    gz, zst, plain = "gzip", "zstd", "none"
    return [
        Case(
            "pax-chain",
            "1,200 PAX headers of 1 MiB before one file",
            "meta header total size limit",
            lambda: Blob(pax_chain(), gz),
        ),
        Case(
            "deep-pax-path",
            "a PAX path 32,000 directories deep",
            "name length limit",
            lambda: Blob(deep_pax_path(), gz),
        ),
        Case(
            "deep-path",
            "a 601-byte name 301 components deep",
            "path depth limit",
            lambda: Blob(deep_short_path(), gz),
        ),
        Case(
            "gnu-long-name", "a 1 MiB GNU long name", "name length limit", lambda: Blob(gnu_long_name(), gz)
        ),
        Case("long-link", "an 8 KiB PAX linkpath", "name length limit", lambda: Blob(long_link(), gz)),
        Case("big-meta", "one 2 MiB PAX header", "meta header size limit", lambda: Blob(big_meta(), gz)),
        Case(
            "many-entries",
            "500,001 tiny entries",
            "entries per layer limit",
            lambda: Blob(many_entries(500_001), gz),
        ),
        Case(
            "dir-names",
            "16,800 directories with 4,000-byte names",
            "directory names limit",
            lambda: Blob(dir_names(64 * MIB + 4000), gz),
        ),
        Case(
            "huge-mtime",
            "a base-256 mtime of 2^90",
            "does not fit in 64 bits",
            lambda: Blob(huge_mtime(), gz),
        ),
        Case(
            "huge-devmajor",
            "a base-256 device major number of 2^61",
            "invalid device number",
            lambda: Blob(huge_devmajor(), gz),
        ),
        Case(
            "huge-pax-time",
            "a PAX mtime of 5,000 digits",
            "does not fit in 64 bits",
            lambda: Blob(huge_pax_time(), gz),
        ),
        Case(
            "bad-checksum",
            "a header checksum off by one",
            "checksum mismatch",
            lambda: Blob(bad_checksum(), gz),
        ),
        Case(
            "gzip-bomb",
            "1 GiB of zeros after the archive, gzip",
            "trailing data limit",
            lambda: Blob(zero_bomb(1 << 30), gz),
        ),
        Case(
            "zstd-bomb",
            "1 GiB of zeros after the archive, zstd",
            "trailing data limit",
            lambda: Blob(zero_bomb(1 << 30), zst),
        ),
        Case(
            "zstd-huge-window",
            "a zstd frame that declares a 2 GiB window",
            "too much memory",
            lambda: Blob((member(b"f", b"x"), END), zst, window_log=31),
        ),
        Case(
            "zstd-window-bomb",
            "a 256 MiB file of zeros, zstd with a 128 MiB window, with a wrong DiffID",
            "does not match the expected",
            lambda: Blob(file_bomb(256 * MIB), zst, window_log=27),
            "diff_id",
        ),
        Case(
            "file-bomb",
            "a 256 MiB file of zeros, gzip, with a wrong DiffID",
            "does not match the expected",
            lambda: Blob(file_bomb(256 * MIB), gz),
            "diff_id",
        ),
        Case(
            "gzip-truncated",
            "a gzip stream cut in half",
            "gzip stream is truncated",
            lambda: Blob((member(b"f", bytes(range(256)) * 4000), END), gz),
            "truncate",
        ),
        Case(
            "zstd-truncated",
            "a zstd stream cut in half",
            "zstd stream is truncated",
            lambda: Blob((member(b"f", bytes(range(256)) * 4000), END), zst),
            "truncate",
        ),
        Case(
            "gzip-garbage",
            "non-gzip bytes after the gzip stream",
            "not gzip",
            lambda: Blob((member(b"f", b"x"), END), gz),
            "garbage",
        ),
        Case(
            "gzip-corrupt",
            "a gzip stream with flipped bytes",
            "not valid gzip data",
            lambda: Blob((member(b"f", bytes(range(256)) * 4000), END), gz),
            "corrupt",
        ),
        Case(
            "zstd-corrupt",
            "a zstd stream with flipped bytes",
            "zstd",
            lambda: Blob((member(b"f", bytes(range(256)) * 4000), END), zst),
            "corrupt",
        ),
        Case(
            "tar-truncated",
            "a file header promising more than the stream has",
            "truncated",
            lambda: Blob(truncated_tar(), gz),
        ),
        Case(
            "wrong-size",
            "a blob 1,000 bytes larger than its descriptor",
            "larger than its descriptor",
            lambda: Blob((member(b"f", os.urandom(4096)), END), gz),
            "size",
        ),
        Case(
            "short-blob",
            "a blob 1,000 bytes shorter than its descriptor",
            "its descriptor says",
            lambda: Blob((member(b"f", os.urandom(4096)), END), gz),
            "short",
        ),
        Case(
            "wrong-digest",
            "a blob that does not match its digest",
            "does not match its digest",
            lambda: Blob((member(b"f", b"x"), END), gz),
            "digest",
        ),
        Case(
            "wrong-diff-id",
            "a layer whose DiffID is not the config's",
            "does not match the expected",
            lambda: Blob((member(b"f", b"x"), END), gz),
            "diff_id",
        ),
        Case(
            "hardlink-escape",
            "a hard link to ../../../../etc/passwd",
            "points outside the layer",
            lambda: Blob(hardlink_escape(), gz),
        ),
        Case(
            "symlink-escape",
            "a file written through a symlink to /",
            "symlink or not a directory",
            lambda: Blob(symlink_escape(), gz),
        ),
        Case(
            "whiteout-symlink",
            "a whiteout through a symlink to /etc",
            "symlink or not a directory",
            lambda: Blob(whiteout_through_symlink(), gz),
        ),
        Case(
            "whiteout-dotdot",
            "a whiteout named .wh..",
            "invalid whiteout",
            lambda: Blob(whiteout_dotdot(), gz),
        ),
        Case(
            "child-deep-path",
            "a 17 MiB plain layer with a too-deep name (extracted in the child)",
            "path depth limit",
            lambda: Blob(large_plain_then_deep(), plain),
        ),
    ]


def gzip_layer(entries: Iterable[bytes]) -> bytes:
    """A gzip-compressed tar of ``entries`` (helper for small good layers)."""
    return gzip.compress(b"".join(entries) + END, mtime=0)


# ------------------------------------------------------------------------------ serving, measuring


GOOD_REPO = "good/small"


class CorpusImages(Mapping[str, object]):
    """``hostile/<case>`` → the case's image (built on first request), and ``good/small``."""

    def __init__(self, cases: Iterable[Case]) -> None:
        self.cases = {f"hostile/{case.name}": case for case in cases}
        self.good = Image(Blob((member(b"etc/marker", b"good\n"), END), "gzip"))

    def __getitem__(self, repo: str) -> object:
        if repo == GOOD_REPO:
            return self.good
        return self.cases[repo].image

    def __iter__(self) -> Iterator[str]:
        return iter([GOOD_REPO, *self.cases])

    def __len__(self) -> int:
        return len(self.cases) + 1


def serve(registry: Any, cases: Iterable[Case]) -> None:
    """Make a ``tests.integration.fake_registry.FakeRegistry`` serve the corpus instead of its own images."""
    registry.images = CorpusImages(cases)


class PeakRss:
    """Peak RSS growth of a process (and, separately, of its children) while the block runs.

    The process's high-water mark is reset first (``/proc/PID/clear_refs`` ← 5, root only), so growth is
    ``VmHWM`` after minus ``VmRSS`` before; children (the layer-extraction process) are sampled every 20 ms.
    """

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.growth_kib = 0
        self.children_peak_kib = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample_children, daemon=True)
        self._before = 0

    def __enter__(self) -> PeakRss:
        with open(f"/proc/{self.pid}/clear_refs", "w") as refs:
            refs.write("5")
        self._before = status_kib(self.pid, "VmRSS")
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.growth_kib = max(0, status_kib(self.pid, "VmHWM") - self._before)

    def _sample_children(self) -> None:
        while not self._stop.wait(0.02):
            total = sum(status_kib(child, "VmRSS") for child in _children(self.pid))
            self.children_peak_kib = max(self.children_peak_kib, total)


def _children(pid: int) -> list[int]:
    found: list[int] = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as children:
                found += [int(child) for child in children.read().split()]
    except OSError:
        pass
    return found
