"""Storage driver plugin: containers/storage's ``vfs`` driver (every layer a full copy; works everywhere).

The layout and the copy live in :mod:`crio.plugins.storage_vfs.driver`; these hooks answer only for the
driver name ``vfs``.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path

from crio.core.errors import Unimplemented
from crio.core.hookspecs import hookimpl
from crio.core.types import StorageContext
from crio.plugins.storage_vfs.driver import DRIVER, VfsDriver


@functools.lru_cache(maxsize=16)
def _driver(ctx: StorageContext) -> VfsDriver:
    return VfsDriver(ctx)


def _ours(ctx: StorageContext) -> VfsDriver | None:
    return _driver(ctx) if ctx.driver == DRIVER else None


def _refuse_idmap(options: Sequence[str], what: str) -> None:
    """vfs copies layers and never maps IDs: refuse ``idmap_*`` options (pod user namespaces)."""
    if any(o.startswith("idmap_") for o in options):
        raise Unimplemented(f"vfs: {what} (pod user namespaces) need the overlay driver")


@hookimpl
def crio_storage_driver_names() -> Sequence[str]:
    """This plugin implements ``vfs``."""
    return [DRIVER]


@hookimpl
def crio_storage_init(ctx: StorageContext) -> bool | None:
    """Create ``<graphroot>/vfs/dir``."""
    driver = _ours(ctx)
    if driver is None:
        return None
    driver.init()
    return True


@hookimpl
def crio_storage_diff_format(ctx: StorageContext) -> str | None:
    """vfs layers are full trees: diffs are applied with whiteouts executed."""
    return "apply" if ctx.driver == DRIVER else None


@hookimpl
def crio_storage_create_layer(ctx: StorageContext, layer_id: str, parent_id: str | None) -> Path | None:
    """Create the layer directory as a copy of the parent's."""
    driver = _ours(ctx)
    return None if driver is None else driver.create_layer(layer_id, parent_id)


@hookimpl
def crio_storage_mount(
    ctx: StorageContext, layer_id: str, mount_label: str, options: Sequence[str]
) -> Path | None:
    """No mount: the layer directory itself. Id-mapped root filesystems (user namespaces) are not offered."""
    driver = _ours(ctx)
    if driver is None:
        return None
    _refuse_idmap(options, "id-mapped root filesystems")
    return driver.mount(layer_id)


@hookimpl
def crio_storage_mount_readonly(
    ctx: StorageContext, layer_id: str, target: Path, mount_label: str, options: Sequence[str]
) -> bool | None:
    """Bind the layer directory read-only on ``target``; id-mapped views are not offered."""
    driver = _ours(ctx)
    if driver is None:
        return None
    _refuse_idmap(options, "id-mapped image mounts")
    driver.mount_readonly(layer_id, target, options)
    return True


@hookimpl
def crio_storage_unmount(ctx: StorageContext, layer_id: str) -> bool | None:
    """Nothing to unmount."""
    return True if ctx.driver == DRIVER else None


@hookimpl
def crio_storage_remove_layer(ctx: StorageContext, layer_id: str) -> bool | None:
    """Delete the layer directory."""
    driver = _ours(ctx)
    if driver is None:
        return None
    driver.remove_layer(layer_id)
    return True


@hookimpl
def crio_storage_layer_size(ctx: StorageContext, layer_id: str) -> tuple[int, int] | None:
    """Bytes and inodes of the layer directory."""
    driver = _ours(ctx)
    return None if driver is None else driver.size(layer_id)


@hookimpl
def crio_storage_shutdown(ctx: StorageContext) -> bool | None:
    """Nothing to release."""
    return True if ctx.driver == DRIVER else None
