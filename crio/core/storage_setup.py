"""Choosing the storage driver and opening the containers/storage store at start-up."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from crio.core.config import Config, ConfigError

# containers/storage driver name aliases.
DRIVER_ALIASES = {"overlay2": "overlay"}
# Preference when nothing is configured, as containers/storage's priority list has it.
DRIVER_PRIORITY = ("overlay", "btrfs", "zfs", "vfs")


def available_drivers(hook: Any) -> list[str]:
    """Driver names served by the loaded plugins: known drivers by priority, then any others by name."""
    names = {name for names in hook.crio_storage_driver_names() for name in names}
    return [n for n in DRIVER_PRIORITY if n in names] + sorted(names - set(DRIVER_PRIORITY))


def choose_driver(config: Config, hook: Any) -> str:
    """The configured driver, or the one an existing store already uses, or the first available one.

    Raises :class:`ConfigError` naming ``crio.storage_driver`` when no loaded plugin provides the driver.
    """
    available = available_drivers(hook)
    wanted = str(config.get("crio.storage_driver"))
    wanted = DRIVER_ALIASES.get(wanted, wanted)
    if wanted:
        if wanted not in available:
            raise ConfigError(
                f"{config.source('crio.storage_driver')}: crio.storage_driver: no loaded plugin provides the "
                f"{wanted!r} driver (available: {', '.join(available) or 'none'})"
            )
        return wanted
    graphroot = Path(str(config.get("crio.root")))
    for name in available:
        if os.path.isdir(graphroot / f"{name}-layers"):
            return name
    if not available:
        raise ConfigError("no storage driver plugin is loaded (crio.plugins: storage_overlay, storage_vfs)")
    return available[0]
