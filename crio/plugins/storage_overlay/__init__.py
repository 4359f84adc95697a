"""Storage driver plugin: containers/storage's ``overlay`` driver (layers as overlayfs lower/upper dirs).

The layout and mount logic live in :mod:`crio.plugins.storage_overlay.driver`; these hooks answer only for
the driver name ``overlay``.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path

from crio.core.config import Config
from crio.core.hookspecs import hookimpl
from crio.core.types import StorageContext
from crio.plugins.storage_overlay.driver import DRIVER, OverlayDriver


def overlay_supported(filesystems: Path = Path("/proc/filesystems")) -> bool:
    """Return True when the kernel lists overlayfs (built in, or its module loaded)."""
    try:
        return any(
            line.split()[-1] == "overlay" for line in filesystems.read_text().splitlines() if line.split()
        )
    except OSError:
        return False


@hookimpl
def crio_plugin_unavailable(config: Config) -> str | None:
    """Skip the plugin on kernels without overlayfs."""
    if overlay_supported() or Path("/sys/module/overlay").exists():
        return None
    return "the kernel does not support overlayfs (no 'overlay' in /proc/filesystems; try 'modprobe overlay')"


@functools.lru_cache(maxsize=16)
def _driver(ctx: StorageContext) -> OverlayDriver:
    return OverlayDriver(ctx)


def _ours(ctx: StorageContext) -> OverlayDriver | None:
    return _driver(ctx) if ctx.driver == DRIVER else None


@hookimpl
def crio_storage_driver_names() -> Sequence[str]:
    """This plugin implements ``overlay``."""
    return [DRIVER]


@hookimpl
def crio_storage_init(ctx: StorageContext) -> bool | None:
    """Create the overlay home, ``l/`` and ``.has-mount-program``."""
    driver = _ours(ctx)
    if driver is None:
        return None
    driver.init()
    return True


@hookimpl
def crio_storage_diff_format(ctx: StorageContext) -> str | None:
    """Overlay layers hold only their own changes, whiteouts as 0:0 devices and opaque xattrs."""
    return "overlay" if ctx.driver == DRIVER else None


@hookimpl
def crio_storage_create_layer(ctx: StorageContext, layer_id: str, parent_id: str | None) -> Path | None:
    """Create ``<id>/`` with diff, link, lower, work, merged (and empty for a base layer)."""
    driver = _ours(ctx)
    return None if driver is None else driver.create_layer(layer_id, parent_id)


@hookimpl
def crio_storage_mount(
    ctx: StorageContext, layer_id: str, mount_label: str, options: Sequence[str]
) -> Path | None:
    """Mount the overlay on ``<id>/merged``."""
    driver = _ours(ctx)
    return None if driver is None else driver.mount(layer_id, mount_label, options)


@hookimpl
def crio_storage_mount_readonly(
    ctx: StorageContext, layer_id: str, target: Path, mount_label: str, options: Sequence[str]
) -> bool | None:
    """Mount a read-only overlay of the layer and its parents (lower directories only) on ``target``."""
    driver = _ours(ctx)
    if driver is None:
        return None
    driver.mount_readonly(layer_id, target, mount_label, options)
    return True


@hookimpl
def crio_storage_unmount(ctx: StorageContext, layer_id: str) -> bool | None:
    """Unmount ``<id>/merged``."""
    driver = _ours(ctx)
    if driver is None:
        return None
    driver.unmount(layer_id)
    return True


@hookimpl
def crio_storage_remove_layer(ctx: StorageContext, layer_id: str) -> bool | None:
    """Delete the layer's directory and its ``l/`` link."""
    driver = _ours(ctx)
    if driver is None:
        return None
    driver.remove_layer(layer_id)
    return True


@hookimpl
def crio_storage_layer_size(ctx: StorageContext, layer_id: str) -> tuple[int, int] | None:
    """Bytes and inodes of ``<id>/diff``."""
    driver = _ours(ctx)
    return None if driver is None else driver.size(layer_id)


@hookimpl
def crio_storage_shutdown(ctx: StorageContext) -> bool | None:
    """Nothing to release: the home is not mounted (see the driver module)."""
    return True if ctx.driver == DRIVER else None
