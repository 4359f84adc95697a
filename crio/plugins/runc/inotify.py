"""A thin ctypes binding of inotify(7): an instance, watches and event parsing (no new dependency)."""

from __future__ import annotations

import ctypes
import os
import struct
from collections.abc import Iterator
from pathlib import Path

IN_CLOSE_WRITE = 0x00000008
IN_MOVED_TO = 0x00000080
IN_CREATE = 0x00000100
IN_Q_OVERFLOW = 0x00004000
IN_IGNORED = 0x00008000
IN_ONLYDIR = 0x01000000

_EVENT = struct.Struct("iIII")  # struct inotify_event: wd, mask, cookie, len (then the name)
_LIBC = ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str, path: Path | None = None) -> int:
    if result < 0:
        err = ctypes.get_errno()
        where = f" {path}" if path is not None else ""
        raise OSError(err, f"{what}{where}: {os.strerror(err)}", str(path) if path is not None else None)
    return result


def init() -> int:
    """A new non-blocking, close-on-exec inotify instance."""
    return _check(_LIBC.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC), "inotify_init1")


def add_watch(fd: int, directory: Path, mask: int) -> int:
    """Watch ``directory`` for ``mask`` (plus IN_ONLYDIR); return the watch descriptor."""
    return _check(
        _LIBC.inotify_add_watch(fd, os.fsencode(directory), mask | IN_ONLYDIR), "cannot watch", directory
    )


def rm_watch(fd: int, wd: int) -> None:
    """Drop a watch (a watch the kernel already dropped is fine)."""
    _LIBC.inotify_rm_watch(fd, wd)


def read_events(fd: int) -> Iterator[tuple[int, int, str]]:
    """Every pending event as ``(wd, mask, name)`` until the instance would block."""
    while True:
        try:
            data = os.read(fd, 65536)
        except BlockingIOError:
            return
        if not data:
            return
        offset = 0
        while offset + _EVENT.size <= len(data):
            wd, mask, _cookie, length = _EVENT.unpack_from(data, offset)
            raw = data[offset + _EVENT.size : offset + _EVENT.size + length]
            offset += _EVENT.size + length
            yield wd, mask, raw.split(b"\0", 1)[0].decode(errors="surrogateescape")
