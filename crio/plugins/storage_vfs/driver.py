"""containers/storage's vfs driver: every layer is a full directory ``<graphroot>/vfs/dir/<id>/``.

A new layer starts as a copy of its parent's directory; its diff is then applied on top with whiteouts
executed (diff format ``"apply"``). There is no mount: the directory is the root filesystem. An image
volume gets a read-only bind of the image's top layer directory (:meth:`VfsDriver.mount_readonly`).

The copy is done in Python rather than with ``cp -a``: the daemon reaps every child process centrally, so a
``subprocess`` started from a worker thread would lose its exit status. It keeps owners, modes (set after the
owner, so setuid bits survive), extended attributes, hard links, device nodes, fifos, sockets, symlinks and
timestamps, and uses reflinks (FICLONE) where the file system offers them.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import shutil
import stat
from collections.abc import Sequence
from pathlib import Path

from crio.core import mountutil
from crio.core.errors import AlreadyExists, InvalidArgument, NotFound
from crio.core.storage.fsutil import directory_usage
from crio.core.types import StorageContext

DRIVER = "vfs"
FICLONE = 0x40049409
_CHUNK = 1 << 20


def parse_options(options: tuple[str, ...]) -> None:
    """Accept ``vfs.ignore_chown_errors``; other ``vfs.`` keys are InvalidArgument errors."""
    for option in options:
        key, sep, _value = option.partition("=")
        key = key.strip().lower()
        if not key.startswith("vfs."):
            continue
        if not sep or key.removeprefix("vfs.") not in ("ignore_chown_errors",):
            raise InvalidArgument(f"vfs: unknown option {option!r}")


class VfsDriver:
    """The vfs driver for one graph root."""

    def __init__(self, ctx: StorageContext) -> None:
        parse_options(ctx.options)
        self.home = ctx.graphroot / DRIVER
        self.dirs = self.home / "dir"

    def dir(self, layer_id: str) -> Path:
        """``<home>/dir/<id>``; refuses IDs that are not plain names."""
        if not layer_id or "/" in layer_id or layer_id in (".", ".."):
            raise InvalidArgument(f"invalid layer ID {layer_id!r}")
        return self.dirs / layer_id

    def init(self) -> None:
        """Create ``<graphroot>/vfs/dir``."""
        self.dirs.mkdir(mode=0o700, parents=True, exist_ok=True)

    def create_layer(self, layer_id: str, parent_id: str | None) -> Path:
        """Create the layer's directory: empty (0755) for a base layer, else a copy of the parent's."""
        target = self.dir(layer_id)
        if target.exists() or target.is_symlink():
            raise AlreadyExists(f"vfs: layer {layer_id} already exists")
        if parent_id is None:
            target.mkdir(mode=0o755)
            os.chmod(target, 0o755)
            return target
        source = self.dir(parent_id)
        if not source.is_dir():
            raise NotFound(f"vfs: parent layer {parent_id} does not exist")
        try:
            copy_tree(source, target)
        except BaseException:
            shutil.rmtree(target, ignore_errors=True)
            raise
        return target

    def remove_layer(self, layer_id: str) -> None:
        """Delete the layer's directory (absent is fine)."""
        target = self.dir(layer_id)
        shutil.rmtree(target, ignore_errors=True)
        if target.exists():
            shutil.rmtree(target)  # raise the real error

    def mount(self, layer_id: str) -> Path:
        """The layer's directory is its root filesystem."""
        target = self.dir(layer_id)
        if not target.is_dir():
            raise NotFound(f"vfs: layer {layer_id} does not exist")
        return target

    def mount_readonly(self, layer_id: str, target: Path, options: Sequence[str] = ()) -> None:
        """Bind the layer's directory on ``target`` and make that bind read-only (plus ``nodev`` and
        ``nosuid`` when asked); the layer's directory itself stays as it is."""
        source = self.mount(layer_id)
        flags = mountutil.MS_BIND | mountutil.MS_REMOUNT | mountutil.MS_RDONLY
        for option, bit in (("nodev", mountutil.MS_NODEV), ("nosuid", mountutil.MS_NOSUID)):
            if option in options:
                flags |= bit
        mountutil.mount(str(source), str(target), "", mountutil.MS_BIND)
        try:
            mountutil.mount("", str(target), "", flags)
        except BaseException:
            mountutil.unmount(str(target), detach=True)
            raise

    def size(self, layer_id: str) -> tuple[int, int]:
        """``(bytes, inodes)`` of the layer's directory."""
        target = self.dir(layer_id)
        if not target.is_dir():
            raise NotFound(f"vfs: layer {layer_id} does not exist")
        return directory_usage(target)


# ---------------------------------------------------------------------------------------------- copy


def copy_tree(source: Path, target: Path) -> None:
    """Copy ``source`` to the new directory ``target`` with all metadata; hard links stay hard links."""
    links: dict[tuple[int, int], str] = {}
    dirs: list[tuple[str, os.stat_result]] = []
    root_stat = os.lstat(source)
    os.mkdir(target, 0o700)
    dirs.append((str(target), root_stat))
    _copy_xattrs(str(source), str(target))
    stack = [(str(source), str(target))]
    while stack:
        src_dir, dst_dir = stack.pop()
        with os.scandir(src_dir) as entries:
            for entry in entries:
                dst = os.path.join(dst_dir, entry.name)
                st = entry.stat(follow_symlinks=False)
                if stat.S_ISDIR(st.st_mode):
                    os.mkdir(dst, 0o700)
                    _copy_xattrs(entry.path, dst)
                    dirs.append((dst, st))
                    stack.append((entry.path, dst))
                    continue
                key = (st.st_dev, st.st_ino)
                if st.st_nlink > 1 and not stat.S_ISDIR(st.st_mode) and key in links:
                    os.link(links[key], dst, follow_symlinks=False)
                    continue
                _copy_node(entry.path, dst, st)
                if st.st_nlink > 1:
                    links[key] = dst
    for path, st in reversed(dirs):  # children first, so their writes do not touch parents' mtimes later
        _set_metadata(path, st)


def _copy_node(src: str, dst: str, st: os.stat_result) -> None:
    mode = st.st_mode
    if stat.S_ISREG(mode):
        _copy_file(src, dst)
    elif stat.S_ISLNK(mode):
        os.symlink(os.readlink(src), dst)
    elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode) or stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode):
        os.mknod(dst, mode, st.st_rdev)
    else:
        raise InvalidArgument(f"vfs: cannot copy {src}: unknown file type {oct(mode)}")
    _copy_xattrs(src, dst)
    _set_metadata(dst, st)


def _copy_file(src: str, dst: str) -> None:
    in_fd = os.open(src, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    try:
        out_fd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            try:
                fcntl.ioctl(out_fd, FICLONE, in_fd)
                return
            except OSError:
                pass
            while True:
                try:
                    copied = os.copy_file_range(in_fd, out_fd, _CHUNK * 64)
                except OSError as exc:
                    if exc.errno not in (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
                        raise
                    _copy_by_reading(in_fd, out_fd)
                    return
                if copied == 0:
                    return
        finally:
            os.close(out_fd)
    finally:
        os.close(in_fd)


def _copy_by_reading(in_fd: int, out_fd: int) -> None:
    while chunk := os.read(in_fd, _CHUNK):
        view = memoryview(chunk)
        while view:
            view = view[os.write(out_fd, view) :]


def _copy_xattrs(src: str, dst: str) -> None:
    try:
        names = os.listxattr(src, follow_symlinks=False)
    except OSError as exc:
        if exc.errno in (errno.ENOTSUP, errno.EOPNOTSUPP):
            return
        raise
    for name in names:
        with contextlib.suppress(FileNotFoundError):
            value = os.getxattr(src, name, follow_symlinks=False)
            os.setxattr(dst, name, value, follow_symlinks=False)


def _set_metadata(path: str, st: os.stat_result) -> None:
    os.chown(path, st.st_uid, st.st_gid, follow_symlinks=False)
    if not stat.S_ISLNK(st.st_mode):
        os.chmod(path, stat.S_IMODE(st.st_mode))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)
