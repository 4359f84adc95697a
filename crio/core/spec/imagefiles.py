"""Reading small files (/etc/passwd, /etc/group) out of a container's root filesystem without ever
leaving it, whatever symlinks the image holds (CVE-2024-5154), and without reading huge files into
memory (CVE-2025-4437).

Every path component is opened with ``O_NOFOLLOW`` relative to the directory fd of its parent. A symlink
is resolved by hand as if the rootfs were "/": an absolute target restarts at the rootfs, ``..`` never
climbs above it (the parent fds are kept on a stack, ``..`` is never opened). The final file is opened
with ``O_PATH`` first, so a FIFO or device node in the image is never opened for reading.
"""

from __future__ import annotations

import os
import stat
from collections import deque

from crio.core.errors import InvalidArgument

MAX_SYMLINKS = 40
DEFAULT_LIMIT = 1 << 20
_PATH_FLAGS = os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC


class Absent(Exception):
    """The path, or one of its directories, does not exist in the rootfs."""


def open_in_root(root_fd: int, path: str) -> int:
    """An O_PATH fd of ``path`` resolved inside the directory ``root_fd`` (which stays open), as if it were
    "/". Raises :class:`Absent`, or InvalidArgument after :data:`MAX_SYMLINKS` symbolic links."""
    parts = deque(path.split("/"))
    stack = [os.dup(root_fd)]
    links = 0
    try:
        while parts:
            name = parts.popleft()
            if name in ("", "."):
                continue
            if name == "..":
                if len(stack) > 1:
                    os.close(stack.pop())
                continue
            try:
                fd = os.open(name, _PATH_FLAGS, dir_fd=stack[-1])
            except (FileNotFoundError, NotADirectoryError):
                raise Absent from None
            try:
                mode = os.fstat(fd).st_mode
            except OSError:
                os.close(fd)
                raise
            if stat.S_ISLNK(mode):
                try:
                    target = os.readlink("", dir_fd=fd)  # readlinkat(fd, ""): the link fd itself
                finally:
                    os.close(fd)
                links += 1
                if links > MAX_SYMLINKS:
                    raise InvalidArgument(f"{path} in the image: too many levels of symbolic links")
                if target.startswith("/"):
                    while len(stack) > 1:
                        os.close(stack.pop())
                parts.extendleft(reversed(target.split("/")))
                continue
            if any(p not in ("", ".") for p in parts):
                if not stat.S_ISDIR(mode):
                    os.close(fd)
                    raise Absent
                stack.append(fd)
                continue
            return fd
        return os.dup(stack[-1])  # the path named a directory (or the root itself)
    finally:
        for fd in stack:
            os.close(fd)


def read_image_file(rootfs: str, path: str, limit: int = DEFAULT_LIMIT) -> str:
    """The text of ``path`` (e.g. "/etc/passwd") inside ``rootfs``, "" when it does not exist.

    Symlinks resolve inside ``rootfs``. A path that is not a regular file, takes more than
    :data:`MAX_SYMLINKS` symlinks, or holds more than ``limit`` bytes raises
    :class:`crio.core.errors.InvalidArgument`. Invalid UTF-8 is replaced, not refused.
    """
    root_fd = os.open(rootfs, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        try:
            fd = open_in_root(root_fd, path)
        except Absent:
            return ""
    finally:
        os.close(root_fd)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise InvalidArgument(f"{path} in the image is not a regular file")
        if info.st_size > limit:
            raise InvalidArgument(f"{path} in the image is larger than {limit} bytes")
        # Reopen the very inode the O_PATH fd holds, for reading.
        reader = os.open(f"/proc/self/fd/{fd}", os.O_RDONLY | os.O_CLOEXEC | os.O_NOCTTY)
    finally:
        os.close(fd)
    with os.fdopen(reader, "rb") as file:
        data = file.read(limit + 1)
    if len(data) > limit:
        raise InvalidArgument(f"{path} in the image is larger than {limit} bytes")
    return data.decode("utf-8", errors="replace")
