"""containers/storage's overlay driver layout and mounts.

Home ``<graphroot>/overlay``; per layer ``<id>/`` with ``diff/``, ``link`` (26 chars of base32), ``lower``
(the parent's ``l/<LINK>`` followed by the parent's ``lower``), ``work/``, ``merged/`` and, for a base layer,
``empty/``; ``l/<LINK>`` is a relative symlink to ``../<id>/diff``; ``.has-mount-program`` says ``false``.

Mounting. The mount data is built as containers/storage does: absolute paths when the option string fits
in a page (the kernel copies at most one page of mount data). When it does not, Go chdirs a helper process
into the home and uses relative paths; a chdir here would change the directory of every thread of the daemon,
so the mount instead runs on a short-lived thread that first calls ``unshare(CLONE_FS)`` (giving that
thread, and only it, its own working directory) and then:

* uses the Go form (``lowerdir=l/LINK:...,upperdir=<id>/diff,workdir=<id>/work`` from the home) when
  that fits, else
* opens every lower directory and passes them as file descriptor numbers relative to ``/proc/self/fd``
  (about five bytes per layer instead of 27), which keeps chains of several hundred layers mountable.

No child process is involved (the daemon reaps children centrally). The home is not bind-mounted onto
itself as private (like ``skip_mount_home``): the daemon runs in the host mount namespace and podman
accepts a home that is not a mount point.
"""

from __future__ import annotations

import base64
import contextlib
import ctypes
import errno
import os
import shutil
import stat
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from crio.core.errors import AlreadyExists, Internal, InvalidArgument, NotFound
from crio.core.storage.fsutil import directory_usage
from crio.core.types import StorageContext

DRIVER = "overlay"
LINK_DIR = "l"
ID_LEN = 26
MAX_DEPTH = 500
CLONE_FS = 0x00000200
MNT_DETACH = 2
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")

MS_FLAGS = {
    "ro": (True, 1),
    "rw": (False, 1),
    "nosuid": (True, 2),
    "suid": (False, 2),
    "nodev": (True, 4),
    "dev": (False, 4),
    "noexec": (True, 8),
    "exec": (False, 8),
    "sync": (True, 16),
    "async": (False, 16),
    "dirsync": (True, 128),
    "noatime": (True, 1024),
    "atime": (False, 1024),
    "nodiratime": (True, 2048),
    "diratime": (False, 2048),
    "relatime": (True, 1 << 21),
    "norelatime": (False, 1 << 21),
    "strictatime": (True, 1 << 24),
}

# Id-mapped layers for pods in their own user namespace (the options crio.core.userns passes).
IDMAP_USERNS = "idmap_userns="
IDMAP_ROOT = "idmap_root="
SYS_OPEN_TREE = 428
SYS_MOUNT_SETATTR = 442
OPEN_TREE_CLONE = 1
AT_FDCWD = -100
AT_EMPTY_PATH = 0x1000
MOUNT_ATTR_IDMAP = 0x00100000

_libc = ctypes.CDLL(None, use_errno=True)


class _MountAttr(ctypes.Structure):
    _fields_ = [
        ("attr_set", ctypes.c_uint64),
        ("attr_clr", ctypes.c_uint64),
        ("propagation", ctypes.c_uint64),
        ("userns_fd", ctypes.c_uint64),
    ]


_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
_libc.unshare.argtypes = [ctypes.c_int]


def _os_error(what: str) -> OSError:
    code = ctypes.get_errno()
    return OSError(code, f"{what}: {os.strerror(code)}")


# ------------------------------------------------------------------------------------------ options


def parse_options(options: Sequence[str]) -> dict[str, str]:
    """Driver options (``overlay.mountopt=nodev``, ``overlay2.skip_mount_home=true``...) → {key: value}.

    Unknown keys and features this driver does not implement are InvalidArgument errors.
    """
    known = {"mountopt", "skip_mount_home", "mount_program", "size", "inodes", "ignore_chown_errors"}
    result: dict[str, str] = {}
    for option in options:
        key, sep, value = option.partition("=")
        if not sep:
            raise InvalidArgument(f"overlay: option {option!r} is not KEY=VALUE")
        key = key.strip().lower()
        for prefix in ("overlay.", "overlay2."):
            key = key.removeprefix(prefix)
        if "." in key:
            continue  # another driver's option (e.g. vfs.ignore_chown_errors)
        if key not in known:
            raise InvalidArgument(f"overlay: unknown option {option!r}")
        if key == "mount_program" and value.strip():
            raise InvalidArgument(
                "overlay: mount_program (fuse-overlayfs) is not supported; use native overlay"
            )
        if key in ("size", "inodes") and value.strip():
            raise InvalidArgument(f"overlay: option {key} (project quotas) is not supported")
        result[key] = value.strip()
    return result


def split_mount_options(data: str) -> tuple[int, str]:
    """Turn mount flags (``nodev``, ``ro``...) of a comma-separated option string into MS_* bits."""
    flags = 0
    rest: list[str] = []
    for item in (o for o in data.split(",") if o):
        known = MS_FLAGS.get(item)
        if known is None:
            rest.append(item)
        elif known[0]:
            flags |= known[1]
        else:
            flags &= ~known[1]
    return flags, ",".join(rest)


# --------------------------------------------------------------------------------------------- driver


class OverlayDriver:
    """The overlay driver for one graph root."""

    def __init__(self, ctx: StorageContext) -> None:
        self.home = ctx.graphroot / DRIVER
        self.runhome = ctx.runroot / DRIVER
        self.options = parse_options(ctx.options)
        mountopt = self.options.get("mountopt")
        self.mountopts = [o for o in (mountopt if mountopt is not None else "nodev").split(",") if o]

    def dir(self, layer_id: str) -> Path:
        """``<home>/<id>``; refuses IDs that are not plain names."""
        if not layer_id or "/" in layer_id or layer_id in (".", "..", LINK_DIR):
            raise InvalidArgument(f"invalid layer ID {layer_id!r}")
        return self.home / layer_id

    def init(self) -> None:
        """Create home, ``l/``, run home and ``.has-mount-program``."""
        self.home.mkdir(mode=0o700, parents=True, exist_ok=True)
        (self.home / LINK_DIR).mkdir(mode=0o755, exist_ok=True)
        self.runhome.mkdir(mode=0o700, parents=True, exist_ok=True)
        marker = self.home / ".has-mount-program"
        if not marker.exists():
            fd = os.open(marker, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write("false")

    # ---------------------------------------------------------------------------------------- layers

    def _lower_of(self, parent_id: str) -> str:
        parent = self.dir(parent_id)
        try:
            link = (parent / "link").read_text()
        except FileNotFoundError:
            raise NotFound(f"overlay: parent layer {parent_id} does not exist") from None
        lowers = [f"{LINK_DIR}/{link}"]
        with contextlib.suppress(FileNotFoundError):
            parent_lower = (parent / "lower").read_text()
            if parent_lower:
                lowers.extend(parent_lower.split(":"))
        if len(lowers) > MAX_DEPTH:
            raise InvalidArgument(f"overlay: layer chain deeper than {MAX_DEPTH} layers")
        return ":".join(lowers)

    def create_layer(self, layer_id: str, parent_id: str | None) -> Path:
        """Make ``<id>/{diff,link,lower,work,merged,empty}`` and ``l/<LINK>``; return the diff dir."""
        layer = self.dir(layer_id)
        lower = self._lower_of(parent_id) if parent_id else ""
        try:
            layer.mkdir(mode=0o700)
        except FileExistsError:
            raise AlreadyExists(f"overlay: layer {layer_id} already exists") from None
        try:
            diff_mode = 0o555
            if parent_id:
                diff_mode = os.stat(self.dir(parent_id) / "diff").st_mode & 0o7777
            else:
                (layer / "empty").mkdir(mode=0o700)
            (layer / "diff").mkdir()
            os.chmod(layer / "diff", diff_mode)
            link = self._new_link(layer_id)
            _write_file(layer / "link", link, 0o644)
            if lower:
                _write_file(layer / "lower", lower, 0o644)
            (layer / "work").mkdir(mode=0o700)
            (layer / "merged").mkdir(mode=0o700)
        except BaseException:
            self.remove_layer(layer_id)
            raise
        return layer / "diff"

    def _new_link(self, layer_id: str) -> str:
        links = self.home / LINK_DIR
        links.mkdir(mode=0o755, exist_ok=True)
        while True:
            link = base64.b32encode(os.urandom(20)).decode("ascii")[:ID_LEN]
            try:
                os.symlink(f"../{layer_id}/diff", links / link)
                return link
            except FileExistsError:
                continue

    def remove_layer(self, layer_id: str) -> None:
        """Unmount if needed, drop ``l/<LINK>`` and the layer directory (absent is fine)."""
        layer = self.dir(layer_id)
        if os.path.ismount(layer / "merged"):
            self.unmount(layer_id)
        with contextlib.suppress(FileNotFoundError):
            link = (layer / "link").read_text().strip()
            if link and "/" not in link:
                with contextlib.suppress(FileNotFoundError):
                    (self.home / LINK_DIR / link).unlink()
        shutil.rmtree(layer, ignore_errors=True)
        if layer.exists():
            shutil.rmtree(layer)  # raise the real error

    def size(self, layer_id: str) -> tuple[int, int]:
        """``(bytes, inodes)`` under ``<id>/diff`` (apparent sizes; hard links counted once)."""
        diff = self.dir(layer_id) / "diff"
        if not diff.is_dir():
            raise NotFound(f"overlay: layer {layer_id} does not exist")
        return directory_usage(diff)

    # ----------------------------------------------------------------------------------------- mounts

    def _lowers(self, layer_id: str) -> list[str]:
        layer = self.dir(layer_id)
        try:
            text = (layer / "lower").read_text()
        except FileNotFoundError:
            return []
        return [entry for entry in text.split(":") if entry]

    def mount(self, layer_id: str, mount_label: str, options: Sequence[str]) -> Path:
        """Mount the layer's overlay on ``<id>/merged`` and return that path."""
        layer = self.dir(layer_id)
        if not (layer / "diff").is_dir():
            raise NotFound(f"overlay: layer {layer_id} does not exist")
        merged = layer / "merged"
        merged.mkdir(mode=0o700, exist_ok=True)
        if os.path.ismount(merged):
            return merged
        self._mount_on(layer_id, merged, mount_label, options)
        return merged

    def mount_readonly(self, layer_id: str, target: Path, mount_label: str, options: Sequence[str]) -> None:
        """Mount the layer and its parents read-only on ``target`` (an overlay of lower directories only,
        the layer's ``empty/`` as the second one for a base layer), apart from its mount on ``merged/``."""
        if not (self.dir(layer_id) / "diff").is_dir():
            raise NotFound(f"overlay: layer {layer_id} does not exist")
        self._mount_on(layer_id, target, mount_label, [*(o for o in options if o != "rw"), "ro"])

    def _mount_on(self, layer_id: str, target: Path, mount_label: str, options: Sequence[str]) -> None:
        layer = self.dir(layer_id)
        idmap, options = split_idmap_options(options)
        readonly = "ro" in options
        extra = [*self.mountopts, *(o for o in options if o not in ("ro", "rw"))]
        if mount_label:
            extra.append(f'context="{mount_label}"')
        lowers = self._lowers(layer_id)
        for entry in lowers:
            if not os.path.isdir(self.home / entry):
                raise Internal(f"overlay: lower layer {entry} of layer {layer_id} is missing")
        flags, tail = split_mount_options(",".join(extra + (["ro"] if readonly else [])))
        if idmap is not None:
            self._mount_idmapped(layer_id, target, lowers, flags, tail, readonly, idmap)
            return
        data = self._data(
            [str(self.home / e) for e in lowers] or [str(layer / "empty")], layer, readonly, tail
        )
        if len(data) < PAGE_SIZE:
            _mount(str(target).encode(), flags, data)
        else:
            _on_private_cwd_thread(lambda: self._mount_long(layer_id, target, lowers, flags, tail, readonly))

    def _data(self, lowers: list[str], layer: Path | str, readonly: bool, tail: str) -> str:
        if readonly:
            data = f"lowerdir={':'.join([f'{layer}/diff', *lowers])}"
        else:
            data = f"lowerdir={':'.join(lowers)},upperdir={layer}/diff,workdir={layer}/work"
        return f"{data},{tail}" if tail else data

    def _mount_long(
        self, layer_id: str, target: Path, lowers: list[str], flags: int, tail: str, readonly: bool
    ) -> None:
        """Runs on a thread with its own working directory (see the module docstring)."""
        mountpoint = str(target).encode()
        os.chdir(self.home)
        data = self._data(lowers or [f"{layer_id}/empty"], layer_id, readonly, tail)
        if len(data) < PAGE_SIZE:
            _mount(mountpoint, flags, data)
            return
        fds: list[int] = []
        try:
            targets = ([f"{layer_id}/diff"] if readonly else []) + lowers
            for entry in targets:
                fds.append(os.open(entry, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC))
            os.chdir("/proc/self/fd")
            upper = (
                []
                if readonly
                else [f"upperdir={self.home / layer_id / 'diff'}", f"workdir={self.home / layer_id / 'work'}"]
            )
            data = ",".join(
                [f"lowerdir={':'.join(str(fd) for fd in fds)}", *upper, *([tail] if tail else [])]
            )
            if len(data) >= PAGE_SIZE:
                raise InvalidArgument(f"overlay: mount options of layer {layer_id} exceed a page")
            _mount(mountpoint, flags, data)
        finally:
            for fd in fds:
                os.close(fd)

    def _mount_idmapped(
        self,
        layer_id: str,
        target: Path,
        lowers: list[str],
        flags: int,
        tail: str,
        readonly: bool,
        idmap: IdMap,
    ) -> None:
        """Mount the overlay over id-mapped views of every lower layer (detached clones, passed as
        ``/proc/self/fd/N``), so a pod in its own user namespace sees its image's files owned by its own IDs.
        The upper layer's root is given to the pod's root user; files the pod creates or copies up land in
        it with the pod's host IDs. The directories leading to the mount become traversable by others."""
        layer = self.dir(layer_id)
        # The runtime bind-mounts the root filesystem from inside the pod's user namespace, whose root is
        # "others" to the store's directories: let it traverse them (o+x, never read).
        for directory in (self.home.parent, self.home, layer, target):
            mode = directory.stat().st_mode
            if not mode & stat.S_IXOTH:
                directory.chmod(stat.S_IMODE(mode) | stat.S_IXOTH)
        # A read-only overlay needs two lower directories: a base layer adds its empty/.
        lower_dirs = [self.home / e for e in lowers] or [layer / "empty"]
        targets = ([layer / "diff"] if readonly else []) + lower_dirs
        userns_fd = os.open(idmap.userns_path, os.O_RDONLY | os.O_CLOEXEC)
        fds: list[int] = []
        try:
            for tree in targets:
                fds.append(idmapped_tree(str(tree), userns_fd))
            lowerdir = ":".join(f"/proc/self/fd/{fd}" for fd in fds)
            if readonly:
                data = f"lowerdir={lowerdir}"
            else:
                os.chown(layer / "diff", idmap.root_uid, idmap.root_gid)
                data = f"lowerdir={lowerdir},upperdir={layer}/diff,workdir={layer}/work"
            data = f"{data},{tail}" if tail else data
            if len(data) >= PAGE_SIZE:
                raise InvalidArgument(f"overlay: mount options of layer {layer_id} exceed a page")
            _mount(str(target).encode(), flags, data)
        except OSError as exc:
            raise Internal(f"overlay: id-mapped mount of layer {layer_id}: {exc}") from None
        finally:
            os.close(userns_fd)
            for fd in fds:
                os.close(fd)

    def unmount(self, layer_id: str) -> None:
        """Unmount ``<id>/merged`` (lazily when busy); not mounted is fine."""
        merged = str(self.dir(layer_id) / "merged").encode()
        if _libc.umount2(merged, 0) == 0:
            return
        code = ctypes.get_errno()
        if code == errno.EINVAL or code == errno.ENOENT:
            return  # not mounted
        if code == errno.EBUSY and _libc.umount2(merged, MNT_DETACH) == 0:
            return
        raise _os_error(f"umount {merged.decode()}")


# ------------------------------------------------------------------------------------------- helpers


def _write_file(path: Path, text: str, mode: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)


@dataclass(frozen=True)
class IdMap:
    """An id-mapped mount request: the user namespace file and the host IDs of its root."""

    userns_path: str
    root_uid: int
    root_gid: int


def split_idmap_options(options: Sequence[str]) -> tuple[IdMap | None, list[str]]:
    """Take ``idmap_userns=PATH`` and ``idmap_root=UID:GID`` (see crio.core.userns) out of mount options."""
    userns_path, root, rest = "", "", []
    for option in options:
        if option.startswith(IDMAP_USERNS):
            userns_path = option[len(IDMAP_USERNS) :]
        elif option.startswith(IDMAP_ROOT):
            root = option[len(IDMAP_ROOT) :]
        else:
            rest.append(option)
    if not userns_path:
        return None, rest
    uid, _, gid = root.partition(":")
    if not (uid.isdigit() and gid.isdigit()):
        raise InvalidArgument(f"overlay: {IDMAP_ROOT}{root!r} is not UID:GID")
    return IdMap(userns_path, int(uid), int(gid)), rest


def idmapped_tree(path: str, userns_fd: int) -> int:
    """A detached clone of the mount at ``path`` whose IDs are mapped through ``userns_fd``."""
    fd = int(_libc.syscall(SYS_OPEN_TREE, AT_FDCWD, path.encode(), OPEN_TREE_CLONE | os.O_CLOEXEC))
    if fd < 0:
        raise _os_error(f"open_tree {path}")
    attr = _MountAttr(MOUNT_ATTR_IDMAP, 0, 0, userns_fd)
    if _libc.syscall(SYS_MOUNT_SETATTR, fd, b"", AT_EMPTY_PATH, ctypes.byref(attr), ctypes.sizeof(attr)) != 0:
        error = _os_error(f"id-map {path}")
        os.close(fd)
        raise error
    return fd


def _mount(target: bytes, flags: int, data: str) -> None:
    if _libc.mount(b"overlay", target, b"overlay", flags, data.encode()) != 0:
        raise _os_error(f"mount overlay on {target.decode()} ({len(data)} bytes of options)")


def _on_private_cwd_thread(work: object) -> None:
    """Run ``work()`` on a new thread whose working directory is its own (unshare(CLONE_FS))."""
    failure: list[BaseException] = []

    def body() -> None:
        try:
            if _libc.unshare(CLONE_FS) != 0:
                raise _os_error("unshare(CLONE_FS)")
            work()  # type: ignore[operator]
        except BaseException as exc:
            failure.append(exc)

    thread = threading.Thread(target=body, name="overlay-mount", daemon=True)
    thread.start()
    thread.join()
    if failure:
        raise failure[0]
