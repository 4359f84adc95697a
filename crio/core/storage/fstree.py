"""Symlink-proof creation of layer entries under a root directory, openat-style.

Every path is resolved from a descriptor of the layer root one component at a time with
``O_DIRECTORY | O_NOFOLLOW``: a component that is a symlink (whether it came with the parent layer or was
created by an earlier entry of this one) or not a directory makes the entry fail with
:class:`InvalidArgument` instead of being followed, so nothing can be created, changed or linked outside
the root. The last component is never followed either: files are created with ``O_CREAT | O_EXCL |
O_NOFOLLOW``, metadata is set through the new descriptor or with ``AT_SYMLINK_NOFOLLOW``, hard links are
made with ``linkat`` without ``AT_SYMLINK_FOLLOW``. Symlink *targets* are stored as given: they are never
followed here, and the runtime resolves them inside the container's root.

Directory descriptors are cached by relative path (tar streams visit directories in order), for the
directories entries were made in, not for every prefix of their paths: a walk starts at the longest cached
prefix and holds one descriptor at a time on the way down, so it keeps O(depth) state and the cache never
holds more than ``_MAX_CACHED_DIRS`` descriptors between entries (a few more while one entry is made). The
cache is dropped whenever a directory is removed, and its descriptors are closed only between entries.
What the tree remembers per layer is bounded too: the names of the directories whose times are set at the
end (``MAX_DIR_NAME_BYTES``), and in apply mode a 16-byte digest per created path.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import posixpath
import shutil
import stat
from collections.abc import Iterator
from itertools import islice
from pathlib import Path

from crio.core.errors import InvalidArgument
from crio.core.storage.tarlimits import (
    INT64_MAX,
    INT64_MIN,
    MAX_DEVICE_NUMBER,
    MAX_DIR_NAME_BYTES,
    LimitExceeded,
    shown,
)
from crio.core.storage.tarsplit import crc64_iso
from crio.core.storage.tarstream import (
    T_BLOCK,
    T_CHAR,
    T_CONT,
    T_DIR,
    T_FIFO,
    T_LINK,
    T_REG,
    T_SYMLINK,
    TarEntry,
)

log = logging.getLogger(__name__)

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_MAX_CACHED_DIRS = 64  # a few parallel extractions must stay far below a 1024-fd limit
_MAX_ID = 0xFFFFFFFE  # (uid_t)-1 means "leave unchanged" to chown
_OPAQUE_XATTR = b"trusted.overlay.opaque"
_NODE_KINDS = {T_CHAR: stat.S_IFCHR, T_BLOCK: stat.S_IFBLK, T_FIFO: stat.S_IFIFO}


class UnsafePath(Exception):
    """A path component is a symlink or not a directory (raised inside :class:`LayerTree`)."""


def clean_name(name: bytes) -> bytes:
    """``name`` as a clean path relative to the root (``b"."`` for the root itself).

    A leading ``/`` is dropped (``/etc/x`` means ``etc/x``); ``.`` and ``..`` components are resolved
    lexically; a name that climbs above the root raises :class:`InvalidArgument`.
    """
    rel = posixpath.normpath(name.lstrip(b"/")) if name else b"."
    if rel == b".." or rel.startswith(b"../"):
        raise InvalidArgument(f"tar entry {shown(name)} points outside the layer")
    return rel


def path_key(rel: bytes) -> bytes:
    """A 16-byte digest standing for the path ``rel`` in per-layer sets (names may be 4 KiB long)."""
    return hashlib.blake2b(rel, digest_size=16).digest()


def drain(data: Iterator[memoryview]) -> int | None:
    """Consume content that is not written anywhere; return its CRC-64 (``None`` if empty)."""
    crc = None
    for piece in data:
        crc = crc64_iso(piece, crc)
    return crc


def _check_ids(entry: TarEntry) -> None:
    if not (0 <= entry.uid <= _MAX_ID and 0 <= entry.gid <= _MAX_ID):
        raise InvalidArgument(f"tar entry {entry.display()} has an invalid owner {entry.uid}:{entry.gid}")


class LayerTree:
    """Creates entries under ``root``; ``overlay`` selects native-overlay whiteouts, else they are applied."""

    def __init__(self, root: Path, overlay: bool) -> None:
        self.overlay = overlay
        self._root = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        self._dirs: dict[bytes, int] = {}
        self._stale: list[int] = []
        self._dir_times: list[tuple[bytes, int, int]] = []
        self._dir_name_bytes = 0
        # Entries this layer created (apply mode): an opaque directory keeps them and drops the rest.
        self._created: set[bytes] | None = None if overlay else set()
        self._xattr_warned: set[bytes] = set()

    # ---------------------------------------------------------------------------- descriptor cache

    def close(self) -> None:
        """Close every descriptor."""
        self._forget_dirs()
        self.trim()
        os.close(self._root)

    def trim(self) -> None:
        """Close descriptors dropped from the cache and keep the cache bounded (call between entries)."""
        for fd in self._stale:
            os.close(fd)
        self._stale.clear()
        if len(self._dirs) > _MAX_CACHED_DIRS:
            for key in list(islice(self._dirs, _MAX_CACHED_DIRS // 2)):
                os.close(self._dirs.pop(key))

    def _forget_dirs(self) -> None:
        self._stale.extend(self._dirs.values())
        self._dirs.clear()

    def _dir_fd(self, rel: bytes, create: bool) -> int:
        """Descriptor of directory ``rel`` (``b""`` = root), creating missing ones (0755) if ``create``.

        The walk starts at the longest cached prefix of ``rel`` and holds one descriptor at a time; only
        the result is cached.
        """
        if not rel:
            return self._root
        fd = self._dirs.get(rel)
        if fd is not None:
            return fd
        fd, pos, cut = self._root, 0, len(rel)
        while (cut := rel.rfind(b"/", 0, cut)) > 0:
            cached = self._dirs.get(rel[:cut])
            if cached is not None:
                fd, pos = cached, cut + 1
                break
        owned = False
        try:
            while True:
                end = rel.find(b"/", pos)
                if end < 0:
                    end = len(rel)
                child = self._open_dir(fd, rel, pos, end, create)
                if owned:
                    os.close(fd)
                fd, owned = child, True
                if end == len(rel):
                    break
                pos = end + 1
        except BaseException:
            if owned:
                os.close(fd)
            raise
        self._dirs[rel] = fd
        return fd

    def _open_dir(self, parent: int, rel: bytes, start: int, end: int, create: bool) -> int:
        """Open (or make) the component ``rel[start:end]`` in ``parent``; ``rel[:end]`` is its path."""
        base = rel[start:end]
        try:
            return os.open(base, _DIR_FLAGS, dir_fd=parent)
        except FileNotFoundError:
            if not create:
                raise
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                raise UnsafePath(
                    f"path component {shown(rel[:end])} is a symlink or not a directory"
                ) from None
            raise
        os.mkdir(base, 0o755, dir_fd=parent)
        fd = os.open(base, _DIR_FLAGS, dir_fd=parent)
        os.fchmod(fd, 0o755)
        if self._created is not None:
            self._created.add(path_key(rel[:end]))
        return fd

    def _remove(self, parent: int, base: bytes) -> None:
        st = os.lstat(base, dir_fd=parent)
        if stat.S_ISDIR(st.st_mode):
            shutil.rmtree(base, dir_fd=parent)
            self._forget_dirs()
        else:
            os.unlink(base, dir_fd=parent)

    # ---------------------------------------------------------------------------- entries

    def apply(self, entry: TarEntry, rel: bytes, data: Iterator[memoryview]) -> int | None:
        """Create ``entry`` at ``rel`` (its :func:`clean_name`), consuming its content from ``data``.

        Returns the content's CRC-64 (``None`` if it has none).
        """
        try:
            return self._apply(entry, rel, data)
        except UnsafePath as exc:
            raise InvalidArgument(
                f"tar entry {entry.display()}: {exc}; refusing to write through it"
            ) from None

    def _apply(self, entry: TarEntry, rel: bytes, data: Iterator[memoryview]) -> int | None:
        kind = entry.typeflag
        if rel == b".":
            if kind != T_DIR:
                raise InvalidArgument(
                    f"tar entry {entry.display()}: a non-directory cannot be the layer root"
                )
            if not self.overlay:  # like containers/storage: overlay keeps the root it made, apply merges
                _check_ids(entry)
                self._set_dir_meta(self._root, b"", entry)
            return drain(data)
        head, _, base = rel.rpartition(b"/")
        if b".wh." in rel:
            for part in head.split(b"/"):
                if part.startswith(b".wh..wh."):
                    return drain(data)  # AUFS metadata (e.g. .wh..wh.plnk): never extracted
                if part.startswith(b".wh."):
                    raise InvalidArgument(f"tar entry {entry.display()} lies inside a whiteout")
            if base.startswith(b".wh."):
                self._whiteout(entry, head, base)
                return drain(data)
        _check_ids(entry)
        parent = self._dir_fd(head, create=True)
        if self._created is not None:
            self._created.add(path_key(rel))
        if kind in (T_REG, T_CONT):
            return self._file(parent, base, entry, data)
        if kind == T_DIR:
            self._dir(parent, base, rel, entry)
        elif kind == T_SYMLINK:
            self._symlink(parent, base, entry)
        elif kind == T_LINK:
            self._hardlink(parent, base, rel, entry)
        elif kind in _NODE_KINDS:
            self._node(parent, base, entry)
        else:
            raise InvalidArgument(f"tar entry {entry.display()} has unsupported type {chr(kind)!r}")
        return drain(data)

    def _file(self, parent: int, base: bytes, entry: TarEntry, data: Iterator[memoryview]) -> int | None:
        try:
            fd = os.open(base, _FILE_FLAGS, 0o600, dir_fd=parent)
        except FileExistsError:
            self._remove(parent, base)
            fd = os.open(base, _FILE_FLAGS, 0o600, dir_fd=parent)
        try:
            crc = None
            write = os.write
            for piece in data:
                crc = crc64_iso(piece, crc)
                written = write(fd, piece)
                while written < len(piece):
                    piece = piece[written:]
                    written = write(fd, piece)
            os.fchown(fd, entry.uid, entry.gid)
            if entry.xattrs:
                self._xattrs(fd, entry)
            os.fchmod(fd, entry.mode & 0o7777)
            os.utime(fd, ns=_times(entry))
        finally:
            os.close(fd)
        return crc

    def _dir(self, parent: int, base: bytes, rel: bytes, entry: TarEntry) -> None:
        try:
            os.mkdir(base, 0o700, dir_fd=parent)
        except FileExistsError:
            if not stat.S_ISDIR(os.lstat(base, dir_fd=parent).st_mode):
                self._remove(parent, base)
                os.mkdir(base, 0o700, dir_fd=parent)
        fd = self._dirs.get(rel)
        if fd is None:
            fd = os.open(base, _DIR_FLAGS, dir_fd=parent)
            self._dirs[rel] = fd
        self._set_dir_meta(fd, rel, entry)

    def _set_dir_meta(self, fd: int, rel: bytes, entry: TarEntry) -> None:
        self._dir_name_bytes += len(rel)
        if self._dir_name_bytes > MAX_DIR_NAME_BYTES:
            raise LimitExceeded(
                f"tar entry {entry.display()}: the layer's directory names add up to more than "
                f"{MAX_DIR_NAME_BYTES} bytes, the directory names limit"
            )
        os.fchown(fd, entry.uid, entry.gid)
        if entry.xattrs:
            self._xattrs(fd, entry)
        os.fchmod(fd, entry.mode & 0o7777)
        atime, mtime = _times(entry)
        self._dir_times.append((rel, atime, mtime))

    def _symlink(self, parent: int, base: bytes, entry: TarEntry) -> None:
        try:
            os.symlink(entry.linkname, base, dir_fd=parent)
        except FileExistsError:
            self._remove(parent, base)
            os.symlink(entry.linkname, base, dir_fd=parent)
        os.chown(base, entry.uid, entry.gid, dir_fd=parent, follow_symlinks=False)
        if entry.xattrs:
            self._xattrs(_proc_path(parent, base), entry)
        os.utime(base, ns=_times(entry), dir_fd=parent, follow_symlinks=False)

    def _node(self, parent: int, base: bytes, entry: TarEntry) -> None:
        mode = _NODE_KINDS[entry.typeflag] | (entry.mode & 0o7777)
        if not (0 <= entry.devmajor <= MAX_DEVICE_NUMBER and 0 <= entry.devminor <= MAX_DEVICE_NUMBER):
            raise InvalidArgument(
                f"tar entry {entry.display()} has an invalid device number {entry.devmajor}:{entry.devminor}"
            )
        device = os.makedev(entry.devmajor, entry.devminor) if entry.typeflag != T_FIFO else 0
        try:
            os.mknod(base, mode, device, dir_fd=parent)
        except FileExistsError:
            self._remove(parent, base)
            os.mknod(base, mode, device, dir_fd=parent)
        self._finish_node(parent, base, entry)

    def _finish_node(self, parent: int, base: bytes, entry: TarEntry) -> None:
        """Owner, xattrs, mode, times of a just-made non-symlink, non-directory entry."""
        os.chown(base, entry.uid, entry.gid, dir_fd=parent, follow_symlinks=False)
        if entry.xattrs:
            self._xattrs(_proc_path(parent, base), entry)
        os.chmod(base, entry.mode & 0o7777, dir_fd=parent)
        os.utime(base, ns=_times(entry), dir_fd=parent, follow_symlinks=False)

    def _hardlink(self, parent: int, base: bytes, rel: bytes, entry: TarEntry) -> None:
        name = entry.display()
        link = shown(entry.linkname)
        try:
            target = clean_name(entry.linkname)
        except InvalidArgument:
            raise InvalidArgument(
                f"tar entry {name}: hard link target {link} points outside the layer"
            ) from None
        if target == b"." or target == rel:
            raise InvalidArgument(f"tar entry {name}: invalid hard link target {link}")
        thead, _, tbase = target.rpartition(b"/")
        try:
            tparent = self._dir_fd(thead, create=False)
            st = os.lstat(tbase, dir_fd=tparent)
        except FileNotFoundError:
            raise InvalidArgument(
                f"tar entry {name}: hard link target {link} does not exist in the layer"
            ) from None
        if stat.S_ISDIR(st.st_mode):
            raise InvalidArgument(f"tar entry {name}: hard link to directory {link}")
        try:
            os.link(tbase, base, src_dir_fd=tparent, dst_dir_fd=parent, follow_symlinks=False)
        except FileExistsError:
            self._remove(parent, base)
            os.link(tbase, base, src_dir_fd=tparent, dst_dir_fd=parent, follow_symlinks=False)
        # containers/storage applies the link header's metadata to the (shared) inode
        if stat.S_ISLNK(st.st_mode):
            os.chown(base, entry.uid, entry.gid, dir_fd=parent, follow_symlinks=False)
        else:
            self._finish_node(parent, base, entry)

    # ---------------------------------------------------------------------------- whiteouts

    def _whiteout(self, entry: TarEntry, head: bytes, base: bytes) -> None:
        if base == b".wh..wh..opq":
            self._opaque(head)
            return
        if base.startswith(b".wh..wh."):
            return  # other AUFS metadata
        name = base[4:]
        if name in (b"", b".", b".."):
            raise InvalidArgument(f"tar entry {entry.display()} is an invalid whiteout")
        if self.overlay:
            _check_ids(entry)
            parent = self._dir_fd(head, create=True)
            try:
                os.mknod(name, stat.S_IFCHR, 0, dir_fd=parent)
            except FileExistsError:
                self._remove(parent, name)
                os.mknod(name, stat.S_IFCHR, 0, dir_fd=parent)
            os.chown(name, entry.uid, entry.gid, dir_fd=parent, follow_symlinks=False)
            return
        try:
            parent = self._dir_fd(head, create=False)
            self._remove(parent, name)
        except FileNotFoundError:
            pass  # nothing to delete

    def _opaque(self, head: bytes) -> None:
        fd = self._dir_fd(head, create=True)
        if self.overlay:
            os.setxattr(fd, _OPAQUE_XATTR, b"y")
            return
        created = self._created
        assert created is not None
        # Depth first, one directory's names at a time; descriptors come from the bounded cache.
        stack: list[tuple[bytes, list[str]]] = [(head, os.listdir(fd))]
        while stack:
            drel, names = stack[-1]
            if not names:
                stack.pop()
                continue
            name = os.fsencode(names.pop())
            self.trim()  # no descriptor is in use between two names
            dfd = self._dir_fd(drel, create=False)
            crel = drel + b"/" + name if drel else name
            if path_key(crel) not in created:
                self._remove(dfd, name)
            elif stat.S_ISDIR(os.lstat(name, dir_fd=dfd).st_mode):
                stack.append((crel, os.listdir(self._dir_fd(crel, create=False))))

    # ---------------------------------------------------------------------------- metadata

    def _xattrs(self, target: int | bytes, entry: TarEntry) -> None:
        """Set the entry's xattrs on ``target``: a descriptor, or a path whose last component is not followed.

        ``trusted.overlay.*`` is never taken from a layer (it would steer the kernel's overlay lookups; opaque
        directories come from ``.wh..wh..opq``). An xattr the file system does not support (ENOTSUP), or a
        ``trusted.*``/``security.selinux`` one it refuses (EPERM/EACCES, e.g. under an LSM), is skipped with a
        warning, as containers/storage skips ENOTSUP; any other refusal fails the entry.
        """
        assert entry.xattrs is not None
        follow = isinstance(target, int)
        for key, value in entry.xattrs.items():
            if key.startswith(b"trusted.overlay."):
                continue
            try:
                os.setxattr(target, key, value, follow_symlinks=follow)
            except OSError as exc:
                refused = exc.errno in (errno.EPERM, errno.EACCES) and (
                    key.startswith(b"trusted.") or key == b"security.selinux"
                )
                if exc.errno not in (errno.ENOTSUP, errno.EOPNOTSUPP) and not refused:
                    raise
                if key not in self._xattr_warned:
                    self._xattr_warned.add(key)
                    log.warning("skipping xattr %r of layer entries (%s)", key, exc.strerror)

    def finish(self) -> None:
        """Set directory times, now that their contents are written."""
        for number, (rel, atime, mtime) in enumerate(self._dir_times):
            if number % 256 == 0:
                self.trim()
            if not rel:
                os.utime(self._root, ns=(atime, mtime))
                continue
            head, _, base = rel.rpartition(b"/")
            try:
                parent = self._dir_fd(head, create=False)
                if not stat.S_ISDIR(os.lstat(base, dir_fd=parent).st_mode):
                    continue  # replaced by a later entry
            except (OSError, UnsafePath):
                continue  # removed or replaced by a later entry
            os.utime(base, ns=(atime, mtime), dir_fd=parent, follow_symlinks=False)


def _times(entry: TarEntry) -> tuple[int, int]:
    """``(atime, mtime)`` in ns; like containers/storage, the access time is never before the mtime."""
    mtime = entry.mtime_ns
    atime = entry.atime_ns
    if not INT64_MIN <= mtime <= INT64_MAX:  # the kernel's range; containers/storage uses the epoch
        mtime = 0
    if atime is not None and not INT64_MIN <= atime <= INT64_MAX:
        atime = None
    return (atime if atime is not None and atime > mtime else mtime), mtime


def _proc_path(parent: int, base: bytes) -> bytes:
    """A path to ``base`` in directory ``parent`` for calls without a ``dir_fd`` (lsetxattr)."""
    return b"/proc/self/fd/%d/%s" % (parent, base)
