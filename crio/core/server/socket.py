"""The CRI unix socket: refuse a live one, replace a stale one, create it 0660 root."""

from __future__ import annotations

import os
import socket
import stat
from collections.abc import Iterator
from contextlib import contextmanager


class SocketInUse(Exception):
    """Another process is serving on the socket path."""


def is_live(path: str) -> bool:
    """Return True when something accepts connections on the unix socket at ``path``."""
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(1.0)
    try:
        probe.connect(path)
    except (ConnectionRefusedError, FileNotFoundError):
        return False
    except OSError:
        return False
    finally:
        probe.close()
    return True


def prepare(path: str) -> None:
    """Create the socket's parent directories and remove a stale socket; raise SocketInUse if it is live."""
    os.makedirs(os.path.dirname(path) or ".", mode=0o755, exist_ok=True)
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise SocketInUse(f"{path} exists and is not a socket; refusing to replace it")
    if is_live(path):
        raise SocketInUse(f"another daemon is already serving on {path}")
    os.unlink(path)


@contextmanager
def socket_umask() -> Iterator[None]:
    """Bind under umask 0117 so the socket is born 0660 (no window where others can connect)."""
    old = os.umask(0o117)
    try:
        yield
    finally:
        os.umask(old)


def finish(path: str) -> None:
    """Make the bound socket 0660 and owned by root."""
    os.chmod(path, 0o660)
    os.chown(path, 0, 0)


def remove(path: str) -> None:
    """Remove the socket file if it is still there."""
    try:
        if stat.S_ISSOCK(os.lstat(path).st_mode):
            os.unlink(path)
    except FileNotFoundError:
        pass
