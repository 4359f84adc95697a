"""The store's one door to its graph driver: the storage hooks of :mod:`crio.core.hookspecs`."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from crio.core.errors import Unavailable, Unimplemented
from crio.core.types import StorageContext


class DriverHooks:
    """Calls the storage hooks for one driver with its :class:`StorageContext`."""

    def __init__(self, hook: Any, ctx: StorageContext) -> None:
        self.hook = hook
        self.ctx = ctx

    def _call(self, name: str, **kwargs: Any) -> Any:
        result = getattr(self.hook, name)(ctx=self.ctx, **kwargs)
        if result is None:
            raise Unavailable(f"no loaded plugin implements storage driver {self.ctx.driver!r} ({name})")
        return result

    def init(self) -> None:
        """Prepare the driver's home."""
        self._call("crio_storage_init")

    def diff_format(self) -> str:
        """``"overlay"`` or ``"apply"``: how layer diffs are laid down."""
        return str(self._call("crio_storage_diff_format"))

    def create_layer(self, layer_id: str, parent_id: str | None) -> Path:
        """Create the layer's directories; return where its diff goes."""
        return Path(self._call("crio_storage_create_layer", layer_id=layer_id, parent_id=parent_id))

    def mount(self, layer_id: str, mount_label: str, options: Sequence[str]) -> Path:
        """Mount the layer (with its parents); return the mount point."""
        return Path(
            self._call("crio_storage_mount", layer_id=layer_id, mount_label=mount_label, options=options)
        )

    def mount_readonly(self, layer_id: str, target: Path, mount_label: str, options: Sequence[str]) -> None:
        """Mount the layer (with its parents) read-only on ``target``, apart from its counted mount.

        A driver plugin without the hook makes this Unimplemented (image volumes need it).
        """
        done = self.hook.crio_storage_mount_readonly(
            ctx=self.ctx, layer_id=layer_id, target=target, mount_label=mount_label, options=options
        )
        if done is None:
            raise Unimplemented(f"storage driver {self.ctx.driver!r} cannot mount layers read-only elsewhere")

    def unmount(self, layer_id: str) -> None:
        """Unmount the layer."""
        self._call("crio_storage_unmount", layer_id=layer_id)

    def remove_layer(self, layer_id: str) -> None:
        """Delete the layer's directories (absent is fine)."""
        self._call("crio_storage_remove_layer", layer_id=layer_id)

    def layer_size(self, layer_id: str) -> tuple[int, int]:
        """``(bytes, inodes)`` of the layer's own data."""
        size, inodes = self._call("crio_storage_layer_size", layer_id=layer_id)
        return int(size), int(inodes)

    def shutdown(self) -> None:
        """Release the driver."""
        self._call("crio_storage_shutdown")
