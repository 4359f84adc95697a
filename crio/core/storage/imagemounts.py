"""Image mounts: read-only mounts of an image that belong to one container (CRI image volumes).

Each image volume of a container gets its own mount,
``<runroot>/<driver>-containers/<id>/image-volumes/<name>`` (no sharing, so no reference counts: whatever is
mounted under a container's ``image-volumes/`` is that container's, and removing the container unmounts it
all, even after a crash or a daemon restart). The images a container mounts are listed in its
``containers.json`` record under :data:`IMAGE_VOLUMES_FLAG`, so the store refuses to delete them while the
container exists.
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from crio.core import mountutil
from crio.core.errors import AlreadyExists, InvalidArgument, NotFound
from crio.core.spec.imagefiles import Absent, open_in_root

# The container record flag listing the IDs of the images its image volumes mount.
IMAGE_VOLUMES_FLAG = "crio.image-volumes"
DIRECTORY = "image-volumes"
# Mounts stacked on one mount point that release() takes off before it gives up.
MAX_STACKED = 16


def volume_images(flags: Mapping[str, Any]) -> tuple[str, ...]:
    """The image IDs a container record's flags say its image volumes use."""
    value = flags.get(IMAGE_VOLUMES_FLAG)
    if not isinstance(value, (list, tuple)):
        return ()
    return tuple(v for v in value if isinstance(v, str))


def with_volume_images(flags: dict[str, Any], image_ids: Sequence[str]) -> dict[str, Any]:
    """``flags`` with the image volume list set (left out when empty)."""
    result = {k: v for k, v in flags.items() if k != IMAGE_VOLUMES_FLAG}
    unique = list(dict.fromkeys(image_ids))
    if unique:
        result[IMAGE_VOLUMES_FLAG] = unique
    return result


def mount_point(directory: Path, name: str) -> Path:
    """``directory/name``; a name that is not a plain file name is InvalidArgument."""
    if not name or "/" in name or name in (".", ".."):
        raise InvalidArgument(f"invalid image mount name {name!r}")
    return directory / name


def make_target(directory: Path, name: str) -> Path:
    """Create the empty mount point ``directory/name`` (``directory`` too when missing)."""
    target = mount_point(directory, name)
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        target.mkdir(mode=0o700)
    except FileExistsError:
        raise AlreadyExists(f"image mount {target} exists already") from None
    return target


def release(target: Path) -> None:
    """Unmount everything on ``target`` (lazily when busy) and remove the directory; absent is fine."""
    for _ in range(MAX_STACKED):
        try:
            if not mountutil.unmount(str(target)):
                break
        except OSError as exc:
            if exc.errno != errno.EBUSY:
                raise
            mountutil.unmount(str(target), detach=True)
    with contextlib.suppress(FileNotFoundError):
        target.rmdir()


def release_all(directory: Path) -> None:
    """:func:`release` every image mount under ``directory``, then remove it; absent is fine."""
    try:
        entries = sorted(directory.iterdir())
    except FileNotFoundError:
        return
    for entry in entries:
        release(entry)
    with contextlib.suppress(FileNotFoundError):
        directory.rmdir()


def check_sub_path(sub_path: str) -> None:
    """Refuse a sub path that is absolute or has a ``..`` component (InvalidArgument)."""
    if sub_path.startswith("/"):
        raise InvalidArgument(f"image sub path {sub_path!r} must be relative to the image's root")
    if ".." in sub_path.split("/"):
        raise InvalidArgument(f"image sub path {sub_path!r} must not contain '..'")
    if "\0" in sub_path:
        raise InvalidArgument(f"image sub path {sub_path!r} contains a NUL byte")


def resolve_in_root(root: Path, sub_path: str) -> Path:
    """``root/sub_path`` with every symbolic link resolved as if ``root`` were ``/``, so the result never
    leaves ``root``: an absolute link starts again at ``root`` and ``..`` stops there (the resolution is
    :func:`crio.core.spec.imagefiles.open_in_root`'s, one component at a time with ``O_NOFOLLOW``).

    NotFound when a component does not exist (or is not a directory but more follow); InvalidArgument for a
    bad sub path (:func:`check_sub_path`) or a symbolic link loop. Meant for read-only trees (an image mount),
    which cannot change between this check and the bind mount that uses the result.
    """
    check_sub_path(sub_path)
    root_fd = os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        try:
            fd = open_in_root(root_fd, sub_path)
        except Absent:
            raise NotFound(f"image sub path {sub_path!r} does not exist in the image") from None
        try:
            real_root = os.readlink(f"/proc/self/fd/{root_fd}")
            real = os.readlink(f"/proc/self/fd/{fd}")
        finally:
            os.close(fd)
    finally:
        os.close(root_fd)
    if os.path.commonpath([real, real_root]) != real_root:
        raise InvalidArgument(f"image sub path {sub_path!r} leaves the image")
    relative = os.path.relpath(real, real_root)
    return root if relative == "." else root / relative
