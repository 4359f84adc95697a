"""Layer diff extraction: one image layer blob laid down in a directory, with its tar-split and statistics.

:func:`apply_diff` makes one streaming pass over the blob: a worker thread reads, hashes and decompresses
it (see :mod:`crio.core.storage.decompress`), while the calling thread parses the tar stream
(:mod:`crio.core.storage.tarstream`), creates the entries under the target directory without ever
following a symlink (:mod:`crio.core.storage.fstree`) and writes the gzipped tar-split file
(:mod:`crio.core.storage.tarsplit`), from which :func:`reassemble` rebuilds the exact tar stream.

Behaviour follows containers/storage (pkg/archive ``Unpack`` for overlay, ``UnpackLayer`` for vfs):

* names are cleaned and taken relative to the root (``/etc/x`` is ``etc/x``); a name or hard-link target
  that climbs above the root, a path through a symlink or a non-directory, and a non-directory entry for
  the root are refused with :class:`InvalidArgument` naming the entry, before anything is written for it;
* an entry replaces whatever is at its path, except that a directory over a directory merges;
* ``fmt="overlay"``: ``.wh.NAME`` becomes a 0:0 character device ``NAME`` owned by the header's uid/gid,
  ``.wh..wh..opq`` sets ``trusted.overlay.opaque=y`` on its directory, other ``.wh..wh.*`` entries are
  skipped, no ``.wh.`` file is ever left; a ``.`` directory entry leaves the root as the driver made it;
* ``fmt="apply"`` (vfs, the target holds a copy of the parent): ``.wh.NAME`` deletes ``NAME``,
  ``.wh..wh..opq`` deletes everything in its directory that this layer did not create (at whatever point of
  the stream it comes); hard links may point at files of the parent; a ``.`` entry sets the root's metadata;
* ownership is set first, then xattrs, then the mode (so setuid/setgid bits and file capabilities
  survive), then times; directory times are set at the end;
* a file path that appears twice is refused, as tar-split (and so containers/storage) refuses it;
* xattrs: ``trusted.overlay.*`` from a layer is dropped; ENOTSUP, and EPERM/EACCES for ``trusted.*`` and
  ``security.selinux``, skip the xattr with a warning; any other refusal fails the entry;
* hostile input is bounded (:mod:`crio.core.storage.tarlimits`): name length, path depth, meta headers,
  entries per layer, directory names kept, trailing data; memory stays bounded whatever the stream holds
  (names are remembered as 16-byte digests).

Errors: bad content raises :class:`InvalidArgument`; an error reading ``blob`` itself (e.g. a dropped
registry connection) and host errors (ENOSPC, EIO, ...) propagate unchanged.

Cancellation: ``cancel`` is checked between entries and while waiting for data; when set,
:class:`DeadlineExceeded` ("pull cancelled") is raised and the caller removes the half-written layer.
"""

from __future__ import annotations

import errno
import posixpath
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Literal

from crio.core.errors import DeadlineExceeded, InvalidArgument
from crio.core.storage.decompress import (
    COMPRESSION_BZIP2,
    COMPRESSION_GZIP,
    COMPRESSION_NONE,
    COMPRESSION_XZ,
    COMPRESSION_ZSTD,
    BlobReadError,
    ChunkPipe,
)
from crio.core.storage.fstree import LayerTree, clean_name, path_key
from crio.core.storage.tarlimits import MAX_ENTRIES, LimitExceeded
from crio.core.storage.tarsplit import TarSplitWriter, reassemble
from crio.core.storage.tarstream import T_GLOBAL, TarInput, TarReader

__all__ = [
    "COMPRESSION_BZIP2",
    "COMPRESSION_GZIP",
    "COMPRESSION_NONE",
    "COMPRESSION_XZ",
    "COMPRESSION_ZSTD",
    "DiffStats",
    "apply_diff",
    "reassemble",
]

# Errors of the host rather than of the layer: passed through unchanged.
_HOST_ERRNOS = frozenset(
    (errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EROFS, errno.ENOMEM, errno.EMFILE, errno.ENFILE)
)
_NO_DATA: tuple[memoryview, ...] = ()


@dataclass(frozen=True)
class DiffStats:
    """What containers/storage records about an extracted layer (layers.json fields in brackets)."""

    compressed_digest: str  # "sha256:<hex>" of the bytes read from the blob [compressed-diff-digest]
    compressed_size: int  # [compressed-size]
    diff_digest: str  # "sha256:<hex>" of the uncompressed tar stream, the DiffID [diff-digest]
    diff_size: int  # length of the uncompressed tar stream [diff-size]
    compression: int  # COMPRESSION_* detected from the magic bytes [compression]
    uids: tuple[int, ...]  # sorted distinct header uids, ``.wh.*`` names excluded [uidset]
    gids: tuple[int, ...]  # [gidset]


def apply_diff(
    blob: BinaryIO,
    target: Path,
    fmt: Literal["overlay", "apply"],
    tar_split: BinaryIO,
    cancel: threading.Event | None = None,
) -> DiffStats:
    """Extract the layer ``blob`` (gzip, zstd, bzip2, xz or plain tar) into the existing directory ``target``.

    Writes the gzipped tar-split to ``tar_split`` (left open) and returns the layer's statistics. The blob
    is read to its end. Bad input (corrupt or truncated data, unsafe or unsupported entries) raises
    :class:`InvalidArgument`; ``cancel`` being set raises :class:`DeadlineExceeded`. On any error the
    target is left half-written for the caller to remove. Safe to call from a worker thread.
    """
    if fmt not in ("overlay", "apply"):
        raise InvalidArgument(f"unknown layer diff format {fmt!r}")
    pipe = ChunkPipe(blob, cancel)
    tree = LayerTree(target, overlay=fmt == "overlay")
    try:
        pipe.start()
        uids, gids = _extract(TarInput(pipe.next_chunk), tree, TarSplitWriter(tar_split), cancel)
    except BlobReadError as exc:  # the blob's own error (e.g. the registry connection), as raised
        assert exc.__cause__ is not None
        raise exc.__cause__ from None
    finally:
        pipe.close()
        tree.close()
    return DiffStats(
        compressed_digest=pipe.compressed_digest,
        compressed_size=pipe.compressed_size,
        diff_digest="sha256:" + pipe.diff_hash.hexdigest(),
        diff_size=pipe.diff_size,
        compression=pipe.compression,
        uids=tuple(sorted(uids)),
        gids=tuple(sorted(gids)),
    )


def _extract(
    inp: TarInput, tree: LayerTree, split: TarSplitWriter, cancel: threading.Event | None
) -> tuple[set[int], set[int]]:
    reader = TarReader(inp)
    uids: set[int] = set()
    gids: set[int] = set()
    seen: set[bytes] = set()  # path_key of every name
    while True:
        if cancel is not None and cancel.is_set():
            raise DeadlineExceeded("pull cancelled")
        tree.trim()
        entry = reader.next()
        if entry is None:
            break
        name = entry.name
        if entry.typeflag == T_GLOBAL:
            rel = key = _go_clean(name)
        else:
            rel = clean_name(name)
            key = rel if name[:1] != b"/" else _go_clean(name)
        key = path_key(key)
        if key in seen:
            raise InvalidArgument(f"tar entry {entry.display()} appears more than once in the layer")
        if len(seen) >= MAX_ENTRIES:
            raise LimitExceeded(
                f"tar entry {entry.display()}: the layer has more than {MAX_ENTRIES} entries, "
                f"the entries per layer limit"
            )
        seen.add(key)
        if not name.rstrip(b"/").rpartition(b"/")[2].startswith(b".wh."):
            uids.add(entry.uid & 0xFFFFFFFF)
            gids.add(entry.gid & 0xFFFFFFFF)
        data = inp.pieces(entry.size) if entry.size else iter(_NO_DATA)
        try:
            crc = None if entry.typeflag == T_GLOBAL else tree.apply(entry, rel, data)
        except OSError as exc:
            if exc.errno in _HOST_ERRNOS:
                raise
            raise InvalidArgument(f"tar entry {entry.display()}: {exc.strerror or exc}") from exc
        except (OverflowError, ValueError) as exc:  # a value the system calls cannot take
            raise InvalidArgument(f"tar entry {entry.display()} cannot be created: {exc}") from exc
        split.file(name, entry.size, crc, entry.raw)
        reader.skip_padding(entry.size)
    for chunk in reader.trailer():
        split.segment(chunk)
    tree.finish()
    split.close()
    return uids, gids


def _go_clean(name: bytes) -> bytes:
    """Go's ``filepath.Clean``: what tar-split compares when it refuses duplicate names."""
    cleaned = posixpath.normpath(name) if name else b"."
    if cleaned.startswith(b"//"):
        cleaned = b"/" + cleaned.lstrip(b"/")
    return cleaned
