"""Mount counts of layers: ``<runroot>/<driver>-layers/mountpoints.json`` under ``mountpoints.lock``.

The file is a JSON array of ``{"id", "path", "count"}`` with only counts above zero, shared with podman:
the driver mounts a layer when its count goes from 0 to 1 and unmounts it when the count returns to 0.
It is small and re-read under the lock every time.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from crio.core.errors import Internal
from crio.core.storage.atomic import atomic_write
from crio.core.storage.lockfile import LockFile, get_lockfile


@dataclass(frozen=True)
class MountPoint:
    """Where a layer is mounted and by how many users."""

    id: str
    path: str
    count: int


class MountPoints:
    """The mountpoints.json file of one store."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / "mountpoints.json"
        self.lock: LockFile = get_lockfile(directory / "mountpoints.lock")

    def load(self) -> dict[str, MountPoint]:
        """Read the mount table (lock held)."""
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return {}
        if not data.strip():
            return {}
        try:
            items = json.loads(data)
        except ValueError as exc:
            raise Internal(f"{self.path}: not valid JSON: {exc}") from exc
        table: dict[str, MountPoint] = {}
        for item in items or []:
            if isinstance(item, dict) and isinstance(item.get("id"), str):
                count = item.get("count", 0)
                if isinstance(count, int) and count > 0:
                    table[item["id"]] = MountPoint(item["id"], str(item.get("path", "")), count)
        return table

    def save(self, table: dict[str, MountPoint]) -> None:
        """Write the mount table, keeping only counts above zero (write lock held)."""
        items = [{"id": m.id, "path": m.path, "count": m.count} for m in table.values() if m.count > 0]
        self.lock.record_write()
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        atomic_write(self.path, json.dumps(items, separators=(",", ":")).encode())
