"""The OCI ``config.json`` a pod's or container's directories hold, written and read the same way."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from crio.core.storage.atomic import atomic_write

CONFIG_JSON = "config.json"


def write_spec(spec: bytes, *directories: Path) -> None:
    """Write ``config.json`` into each directory (ContainerDirectory and ContainerRunDirectory).

    Atomic but not fsynced: the state file written after it (fsynced) is the commit point, and a pod or
    container without state is cleaned up at the next start.
    """
    for directory in directories:
        atomic_write(directory / CONFIG_JSON, spec, durable=False)


def read_spec(directory: Path) -> Any:
    """The ``config.json`` in ``directory`` as JSON, or ``{}`` when it is missing or unreadable."""
    try:
        return json.loads((directory / CONFIG_JSON).read_bytes())
    except (OSError, ValueError):
        return {}
