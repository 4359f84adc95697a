"""Atomic file replacement, as containers/storage's ``ioutils.AtomicWriteFile`` does it.

The data goes to a temporary file ``.tmp-<name>*`` in the target's directory, is flushed with fdatasync,
gets its mode, and is renamed over the target; the directory is then fsynced so the rename is durable. A
reader therefore sees either the old or the new content, never a mix, even across a crash.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


def fsync_dir(directory: Path) -> None:
    """Make a rename or unlink in ``directory`` durable."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, data: bytes, mode: int = 0o600, durable: bool = True) -> None:
    """Replace ``path`` with ``data`` atomically; the file ends up with permission bits ``mode``.

    ``durable`` False skips fdatasync and the directory fsync (for files that may be lost on a crash).
    """
    path = Path(path)
    directory = path.parent
    fd, tmp = tempfile.mkstemp(prefix=f".tmp-{path.name}", dir=directory)
    try:
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        if durable:
            os.fdatasync(fd)
        os.fchmod(fd, mode)
    except BaseException:
        os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    os.close(fd)
    try:
        os.rename(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    if durable:
        fsync_dir(directory)
