"""Pod user namespaces (CRI UsernsOptions, mode POD): pinned namespaces and id-mapped mounts.

A pod with its own user namespace gets it, together with its network namespace *owned by it*, from a
short-lived helper process: ``unshare --user --net sleep`` creates both in one ``unshare(2)``, crio writes
the pod's ``uid_map``/``gid_map`` and bind-mounts ``/proc/PID/ns/{user,net}`` onto files under the namespaces
directory (as CRI-O's pinns does), then the helper is killed; the mounts keep the namespaces. The infra
container and every container of the pod join both by path, so the namespaces the runtime creates for them
(IPC, UTS, PID, mount) are owned by the pod's user namespace too.

Files keep their on-disk owners; the pod sees them through id-mapped mounts (``mount_setattr(2)`` with
``MOUNT_ATTR_IDMAP``): the storage driver mounts the root filesystem over id-mapped layers
(:data:`IDMAP_USERNS_OPTION`), and :func:`idmapped_bind` stages id-mapped copies of bind-mount sources.
:func:`probe` checks once that the kernel can id-map a path's filesystem.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import errno
import os
import signal
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from crio.core import crirecords, netns, proc
from crio.core.errors import FailedPrecondition
from crio.core.types import RuntimeFeatures, RuntimeHandler

USERNS_DIRECTORY = "userns"
HELPER = ("unshare", "--user", "--net", "--", "sleep", "600")
PROBE_HELPER = ("unshare", "--user", "--", "sleep", "600")
HELPER_START_TIMEOUT = 10.0
# Storage mount options that ask the driver for an id-mapped root filesystem.
IDMAP_USERNS_OPTION = "idmap_userns="
IDMAP_ROOT_OPTION = "idmap_root="

SYS_OPEN_TREE = 428
SYS_MOVE_MOUNT = 429
SYS_MOUNT_SETATTR = 442
OPEN_TREE_CLONE = 1
OPEN_TREE_CLOEXEC = os.O_CLOEXEC
AT_EMPTY_PATH = 0x1000
AT_RECURSIVE = 0x8000
AT_FDCWD = -100
MOUNT_ATTR_IDMAP = 0x00100000
MOVE_MOUNT_F_EMPTY_PATH = 0x00000004

MS_BIND = 0x1000
MNT_DETACH = 2

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_void_p]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]


class _MountAttr(ctypes.Structure):
    _fields_ = [
        ("attr_set", ctypes.c_uint64),
        ("attr_clr", ctypes.c_uint64),
        ("propagation", ctypes.c_uint64),
        ("userns_fd", ctypes.c_uint64),
    ]


@dataclass(frozen=True)
class IDMapping:
    """One ID mapping: ``length`` IDs from ``container_id`` inside map to ``host_id`` outside."""

    container_id: int
    host_id: int
    length: int

    def line(self) -> str:
        """The mapping as a ``uid_map``/``gid_map`` line."""
        return f"{self.container_id} {self.host_id} {self.length}\n"

    def oci(self) -> dict[str, int]:
        """The mapping as an OCI ``linux.uidMappings`` entry."""
        return {"containerID": self.container_id, "hostID": self.host_id, "size": self.length}


def mappings_of(config: crirecords.PodSandboxConfig) -> tuple[list[IDMapping], list[IDMapping]]:
    """The (uid, gid) mappings of a pod's UsernsOptions (validated beforehand; none without them)."""
    userns = config.namespace_options.userns_options
    if userns is None:
        return [], []

    def convert(raw: Sequence[crirecords.IDMapping]) -> list[IDMapping]:
        return [IDMapping(m.container_id, m.host_id, m.length) for m in raw]

    return convert(userns.uids), convert(userns.gids)


def host_id(mappings: Sequence[IDMapping], inside: int) -> int:
    """The host ID that ``inside`` maps to (-1 when unmapped)."""
    for m in mappings:
        if m.container_id <= inside < m.container_id + m.length:
            return m.host_id + inside - m.container_id
    return -1


def storage_options(userns_path: str, uids: Sequence[IDMapping], gids: Sequence[IDMapping]) -> list[str]:
    """Storage mount options asking for a root filesystem id-mapped into ``userns_path``."""
    root = f"{host_id(uids, 0)}:{host_id(gids, 0)}"
    return [f"{IDMAP_USERNS_OPTION}{userns_path}", f"{IDMAP_ROOT_OPTION}{root}"]


def directory_for(namespaces_dir: str | Path) -> Path:
    """Where pinned user namespaces live for ``crio.runtime.namespaces_dir``."""
    return Path(namespaces_dir) / USERNS_DIRECTORY


# ---------------------------------------------------------------------------------------- the helper


async def _start_helper(argv: Sequence[str]) -> proc.Spawned:
    """Start ``argv`` (an ``unshare --user ...``) and wait until it is in its new user namespace."""
    helper = proc.spawn(argv)
    own = os.readlink("/proc/self/ns/user")
    loop = asyncio.get_running_loop()
    deadline = loop.time() + HELPER_START_TIMEOUT
    while True:
        with contextlib.suppress(OSError):
            if os.readlink(f"/proc/{helper.pid}/ns/user") != own:
                return helper
        if helper.exited.done() or loop.time() > deadline:
            await _stop_helper(helper)
            raise FailedPrecondition("cannot create a user namespace: unshare did not start")
        await asyncio.sleep(0.005)


async def _stop_helper(helper: proc.Spawned) -> None:
    if not helper.exited.done():
        with contextlib.suppress(ProcessLookupError):
            os.kill(helper.pid, signal.SIGKILL)
    with contextlib.suppress(Exception):
        await asyncio.wait_for(asyncio.shield(helper.exited), 5)


def _write_maps(pid: int, uids: Sequence[IDMapping], gids: Sequence[IDMapping]) -> None:
    for name, mappings in (("uid_map", uids), ("gid_map", gids)):
        with open(f"/proc/{pid}/{name}", "w", encoding="ascii") as handle:
            handle.write("".join(m.line() for m in mappings))


def _bind(source: str, target: Path) -> None:
    """Pin the namespace file ``source`` by bind-mounting it onto a new file ``target``."""
    fd = os.open(target, os.O_RDONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o444)
    os.close(fd)
    if _libc.mount(source.encode(), str(target).encode(), None, MS_BIND, None) != 0:
        error = _syscall_error(f"bind {source} on {target}")
        target.unlink(missing_ok=True)
        raise error


async def create_pinned(
    namespaces_dir: str | Path, name: str, uids: Sequence[IDMapping], gids: Sequence[IDMapping]
) -> tuple[Path, Path]:
    """Create a user namespace with these mappings and a network namespace it owns, pinned as
    ``<namespaces_dir>/userns/<name>`` and ``<namespaces_dir>/netns/<name>``; return both paths."""
    user_dir = await asyncio.to_thread(netns.prepare_directory, directory_for(namespaces_dir))
    net_dir = await asyncio.to_thread(netns.prepare_directory, netns.directory_for(namespaces_dir))
    helper = await _start_helper(HELPER)
    user_path, net_path = user_dir / name, net_dir / name
    try:
        await asyncio.to_thread(_write_maps, helper.pid, uids, gids)
        await asyncio.to_thread(_bind, f"/proc/{helper.pid}/ns/user", user_path)
        try:
            await asyncio.to_thread(_bind, f"/proc/{helper.pid}/ns/net", net_path)
        except BaseException:
            await asyncio.to_thread(netns.remove, user_path)
            raise
    except OSError as exc:
        raise FailedPrecondition(f"cannot pin the pod's user and network namespaces: {exc}") from None
    finally:
        await _stop_helper(helper)
    return user_path, net_path


# -------------------------------------------------------------------------------------- id-mapped mounts


def _syscall_error(what: str) -> OSError:
    code = ctypes.get_errno()
    return OSError(code, f"{what}: {os.strerror(code)}")


def idmapped_tree(path: str, userns_fd: int, recursive: bool = False) -> int:
    """A detached, id-mapped clone of the mount tree at ``path`` (an O_PATH-like fd the caller closes)."""
    flags = OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | (AT_RECURSIVE if recursive else 0)
    fd = int(_libc.syscall(SYS_OPEN_TREE, AT_FDCWD, path.encode(), flags))
    if fd < 0:
        raise _syscall_error(f"open_tree {path}")
    attr = _MountAttr(MOUNT_ATTR_IDMAP, 0, 0, userns_fd)
    setattr_flags = AT_EMPTY_PATH | (AT_RECURSIVE if recursive else 0)
    if _libc.syscall(SYS_MOUNT_SETATTR, fd, b"", setattr_flags, ctypes.byref(attr), ctypes.sizeof(attr)) != 0:
        error = _syscall_error(f"id-map {path}")
        os.close(fd)
        raise error
    return fd


def idmapped_bind(source: str, target: Path, userns_path: str) -> None:
    """Attach an id-mapped (into ``userns_path``) view of ``source`` at ``target`` (created empty, a file or
    a directory like ``source``). Blocking: call from a worker thread."""
    if os.path.isdir(source):
        target.mkdir(mode=0o700, parents=True, exist_ok=True)
    else:
        target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        target.touch(mode=0o600, exist_ok=True)
    userns_fd = os.open(userns_path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        tree = idmapped_tree(source, userns_fd, recursive=True)
    finally:
        os.close(userns_fd)
    try:
        destination = str(target).encode()
        if _libc.syscall(SYS_MOVE_MOUNT, tree, b"", AT_FDCWD, destination, MOVE_MOUNT_F_EMPTY_PATH) != 0:
            raise _syscall_error(f"move_mount {source} to {target}")
    finally:
        os.close(tree)


def unmount_tree(path: Path) -> None:
    """Detach whatever is mounted on ``path`` (nothing is fine). Blocking."""
    for _ in range(16):
        if _libc.umount2(str(path).encode(), MNT_DETACH) != 0:
            if ctypes.get_errno() in (errno.EINVAL, errno.ENOENT):
                return
            raise _syscall_error(f"unmount {path}")


# ------------------------------------------------------------------------------------------- support

_PROBED: dict[str, str | None] = {}
_HANDLER_FEATURES: dict[RuntimeHandler, RuntimeFeatures] = {}


def untraversable_ancestor(path: str) -> str | None:
    """The first directory above ``path`` that others may not traverse (None: all may).

    The runtime bind-mounts a pod's root filesystem from inside the pod's user namespace, whose root is
    "others" to host-owned directories; the storage driver opens up the graph root and below itself.
    """
    current = Path(path).resolve().parent
    while True:
        try:
            if not current.stat().st_mode & 0o001:
                return str(current)
        except OSError:
            return str(current)
        if current.parent == current:
            return None
        current = current.parent


async def storage_reason(driver: str, graphroot: str) -> str | None:
    """Why pods cannot get id-mapped root filesystems from this store (None: they can). Probed once."""
    if driver != "overlay":
        return f"the {driver} storage driver cannot id-map root filesystems (overlay can)"
    blocked = untraversable_ancestor(graphroot)
    if blocked is not None:
        return f"{blocked}, above the graph root, does not let others traverse it (o+x)"
    if graphroot not in _PROBED:
        _PROBED[graphroot] = await probe(graphroot)
    return _PROBED[graphroot]


async def pod_support(plugins: Any, handler: RuntimeHandler, driver: str, graphroot: str) -> str | None:
    """Why a pod of ``handler`` cannot have its own user namespace (None: it can)."""
    features = _HANDLER_FEATURES.get(handler)
    if features is None:
        pending = plugins.hook.crio_runtime_features(handler=handler)
        try:
            features = await pending if pending is not None else RuntimeFeatures()
        except Exception as exc:  # a runtime that cannot say what it supports supports nothing
            return f"cannot read the runtime's features: {exc}"
        _HANDLER_FEATURES[handler] = features
    if not features.user_namespaces:
        return "the runtime cannot join user namespaces"
    return await storage_reason(driver, graphroot)


# --------------------------------------------------------------------------------------------- probe


async def probe(path: str) -> str | None:
    """None when the kernel id-maps mounts of ``path``'s filesystem, else why not."""
    try:
        helper = await _start_helper(PROBE_HELPER)
    except (FailedPrecondition, proc.ProcessError) as exc:
        return str(exc)
    try:
        mapping = [IDMapping(0, 1000, 65536)]
        await asyncio.to_thread(_write_maps, helper.pid, mapping, mapping)
        fd = await asyncio.to_thread(os.open, f"/proc/{helper.pid}/ns/user", os.O_RDONLY | os.O_CLOEXEC)
        try:
            tree = await asyncio.to_thread(idmapped_tree, path, fd)
            os.close(tree)
        finally:
            os.close(fd)
    except OSError as exc:
        return f"id-mapped mounts of {path} fail: {exc.strerror or exc}"
    finally:
        await _stop_helper(helper)
    return None
