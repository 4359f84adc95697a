"""What an "oci" handler advertises, from ``<runtime> features`` and the kernel.

Recursive read-only mounts (the ``rro`` mount option) need the runtime to list ``rro`` among its mount
options and the kernel to have ``mount_setattr(2)`` (Linux 5.12). User namespaces need the runtime to list
the ``user`` namespace: crio creates the pod's user namespace and id-maps its root filesystems itself, and
the core further requires that the storage can id-map (:mod:`crio.core.userns`).
"""

from __future__ import annotations

import ctypes
import errno
import platform
from collections.abc import Mapping
from typing import Any

from crio.core.types import RuntimeFeatures

# mount_setattr(2) is 442 on every architecture that has the new mount API numbers.
SYS_MOUNT_SETATTR = 442
_SUPPORTED_MACHINES = ("x86_64", "aarch64", "ppc64le", "s390x", "riscv64")


def kernel_has_mount_setattr() -> bool:
    """Whether the kernel implements mount_setattr(2): a call on fd -1 fails with EBADF, not ENOSYS."""
    if platform.machine() not in _SUPPORTED_MACHINES:
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    result = libc.syscall(SYS_MOUNT_SETATTR, -1, b"", 0, None, 0)
    return result == 0 or ctypes.get_errno() != errno.ENOSYS


def runtime_lists_rro(details: Mapping[str, Any]) -> bool:
    """Whether ``<runtime> features`` lists the ``rro`` mount option."""
    options = details.get("mountOptions") or []
    return isinstance(options, list) and "rro" in options


def runtime_features(details: Mapping[str, Any], mount_setattr: bool | None = None) -> RuntimeFeatures:
    """The features to advertise for a runtime whose ``features`` output is ``details``."""
    kernel = kernel_has_mount_setattr() if mount_setattr is None else mount_setattr
    return RuntimeFeatures(
        recursive_read_only_mounts=kernel and runtime_lists_rro(details),
        user_namespaces=runtime_joins_user_namespaces(details),
        details=dict(details),
    )


def runtime_joins_user_namespaces(details: Mapping[str, Any]) -> bool:
    """Whether ``<runtime> features`` lists the user namespace. crio itself id-maps the pod's root
    filesystem (crio.core.userns), so the runtime only has to join the pod's user namespace."""
    linux = details.get("linux") or {}
    namespaces = linux.get("namespaces") if isinstance(linux, Mapping) else None
    return isinstance(namespaces, list) and "user" in namespaces
