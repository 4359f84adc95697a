"""mount(2) and umount2(2) through libc, for the few mounts the core makes itself (a pod's /dev/shm, image
volumes)."""

from __future__ import annotations

import ctypes
import errno
import os

MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_REMOUNT = 0x20
MS_BIND = 0x1000
MNT_DETACH = 0x2

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]


def mount(source: str, target: str, fstype: str, flags: int = 0, data: str = "") -> None:
    """mount(2); raises OSError with the errno and the target on failure."""
    if _libc.mount(source.encode(), target.encode(), fstype.encode(), flags, data.encode() or None) != 0:
        code = ctypes.get_errno()
        raise OSError(code, f"mount {fstype} on {target}: {os.strerror(code)}")


def unmount(target: str, detach: bool = False) -> bool:
    """umount2(2); returns False when ``target`` was not mounted (or is gone)."""
    if _libc.umount2(target.encode(), MNT_DETACH if detach else 0) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOENT):
        return False
    raise OSError(code, f"umount {target}: {os.strerror(code)}")


def is_mountpoint(path: str) -> bool:
    """True when ``path`` is listed as a mount point in /proc/self/mountinfo."""
    escaped = path.replace("\\", "\\134").replace(" ", "\\040").replace("\t", "\\011").replace("\n", "\\012")
    with open("/proc/self/mountinfo", encoding="utf-8", errors="replace") as handle:
        return any(line.split(" ", 5)[4] == escaped for line in handle)
