"""Pinned network namespaces: a new namespace kept alive by a bind mount, without any process in it.

A pod's network namespace lives as long as a file under the namespaces directory (default
``/var/run/netns``, i.e. ``crio.runtime.namespaces_dir`` + ``/netns``) has the namespace bind-mounted on it,
as ``ip netns add`` does. :func:`create` makes the namespace from a short-lived dedicated thread: the thread
moves itself alone into a new namespace (``unshare(CLONE_NEWNET)`` affects only the calling thread), bind
mounts ``/proc/thread-self/ns/net`` onto the file and exits; the mount keeps the namespace. No process is
spawned. The loopback interface stays down: the CNI ``loopback`` plugin brings it up.

The directory is made a shared mount point the way iproute2 does it (made shared; when it is not a mount
point yet, first bound onto itself), so namespaces pinned later propagate into mount namespaces cloned
from this one (the OCI runtime's, conmon's).

Everything here is synchronous and blocks on system calls: call it from a worker thread, never from the
event loop. All functions are thread-safe; several pods may be handled at once.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import os
import threading
from pathlib import Path

CLONE_NEWNET = 0x40000000
MS_BIND = 0x1000
MS_REC = 0x4000
MS_SHARED = 1 << 20
MNT_DETACH = 2
NS_GET_NSTYPE = 0xB703  # _IO(0xb7, 0x3): the CLONE_NEW* type of a namespace file
DIRECTORY_NAME = "netns"
_MAX_UNMOUNTS = 16  # stacked mounts removed by remove() before giving up

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_void_p]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
_libc.unshare.argtypes = [ctypes.c_int]

_prepared: set[str] = set()
_prepare_lock = threading.Lock()


def directory_for(namespaces_dir: str | Path) -> Path:
    """Where pinned network namespaces live for the configured ``crio.runtime.namespaces_dir``."""
    return Path(namespaces_dir) / DIRECTORY_NAME


def _encode(text: str | None) -> bytes | None:
    return text.encode() if text is not None else None


def _mount(source: str | None, target: str, fstype: str | None, flags: int) -> None:
    """mount(2); raises OSError naming the target."""
    if _libc.mount(_encode(source), target.encode(), _encode(fstype), flags, None) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount {source or ''} on {target}: {os.strerror(err)}", target)


def _check_name(name: str) -> None:
    if not name or name in (".", "..") or "/" in name or "\0" in name:
        raise ValueError(f"invalid network namespace name {name!r}")


def prepare_directory(directory: str | Path) -> Path:
    """Create ``directory`` and make it a shared mount point (once per directory and process)."""
    path = Path(directory)
    key = os.path.realpath(path)
    with _prepare_lock:
        if key in _prepared:
            return path
        path.mkdir(mode=0o755, parents=True, exist_ok=True)
        try:
            _mount(None, key, "none", MS_SHARED | MS_REC)
        except OSError as exc:
            if exc.errno != errno.EINVAL:  # EINVAL: not a mount point yet
                raise
            _mount(key, key, "none", MS_BIND | MS_REC)
            _mount(None, key, "none", MS_SHARED | MS_REC)
        _prepared.add(key)
    return path


def _pin(target: str, failure: list[OSError]) -> None:
    """Thread body: enter a new network namespace alone and bind-mount it onto ``target``."""
    if _libc.unshare(CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        failure.append(OSError(err, f"unshare(CLONE_NEWNET): {os.strerror(err)}"))
        return
    try:
        _mount("/proc/thread-self/ns/net", target, None, MS_BIND)
    except OSError as exc:
        failure.append(exc)


def create(directory: str | Path, name: str) -> Path:
    """Create a new network namespace pinned at ``directory/name`` and return that path.

    The directory is created and made a shared mount point if needed. An existing file of that name
    raises :class:`FileExistsError` (remove it first). Nothing is left behind on failure.
    """
    _check_name(name)
    base = prepare_directory(directory)
    path = base / name
    fd = os.open(path, os.O_RDONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o444)
    os.close(fd)
    failure: list[OSError] = []
    thread = threading.Thread(target=_pin, args=(str(path), failure), name=f"netns-{name}", daemon=True)
    thread.start()
    thread.join()
    if failure:
        _unlink(path)
        raise failure[0]
    return path


def _unlink(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def remove(path: str | Path) -> None:
    """Unpin a network namespace: detach its mount(s) and delete the file. An absent path is fine.

    The namespace itself goes away with its last user (its veth ends are then destroyed by the kernel).
    """
    target = os.fspath(path).encode()
    for _ in range(_MAX_UNMOUNTS):
        if _libc.umount2(target, MNT_DETACH) != 0:
            err = ctypes.get_errno()
            if err in (errno.EINVAL, errno.ENOENT):  # not (or no longer) a mount point; absent
                break
            raise OSError(err, f"unmount {os.fspath(path)}: {os.strerror(err)}", os.fspath(path))
    _unlink(Path(path))


def exists(path: str | Path) -> bool:
    """True when ``path`` is a (pinned or procfs) network namespace file."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError:
        return False
    try:
        return fcntl.ioctl(fd, NS_GET_NSTYPE) == CLONE_NEWNET
    except OSError:  # ENOTTY: an ordinary file (e.g. an empty file left without its mount)
        return False
    finally:
        os.close(fd)
