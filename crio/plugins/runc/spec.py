"""Adjustments the runtime handler makes to a bundle's ``config.json`` before ``runtime create``.

Only one today: ``process.oomScoreAdj`` must not go below the daemon's own oom_score_adj. Lowering it
needs CAP_SYS_RESOURCE, which root may lack (in a user namespace or a restricted container); runc then
fails the create. The value is raised to the daemon's own one, and the change is logged.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

OWN_OOM_SCORE_ADJ = Path("/proc/self/oom_score_adj")


def own_oom_score_adj() -> int:
    """The daemon's own oom_score_adj (0 when it cannot be read)."""
    try:
        return int(OWN_OOM_SCORE_ADJ.read_text().strip())
    except (OSError, ValueError):
        return 0


def clamp_oom_score_adj(spec: dict[str, Any], floor: int) -> int | None:
    """Raise ``process.oomScoreAdj`` of ``spec`` to ``floor`` in place; return the old value if changed."""
    process = spec.get("process")
    if not isinstance(process, dict):
        return None
    value = process.get("oomScoreAdj")
    if not isinstance(value, int) or isinstance(value, bool) or value >= floor:
        return None
    process["oomScoreAdj"] = floor
    return value


def load(bundle: Path) -> dict[str, Any]:
    """Read the bundle's ``config.json``."""
    spec: dict[str, Any] = json.loads((bundle / "config.json").read_text())
    return spec


def _write_atomically(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w") as handle:
        json.dump(data, handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def prepare(bundle: Path, container_id: str) -> dict[str, Any]:
    """Load the bundle's spec, clamp its oom_score_adj (rewriting the file if needed) and return it.

    Blocking file I/O: run it in a worker thread.
    """
    spec = load(bundle)
    floor = own_oom_score_adj()
    old = clamp_oom_score_adj(spec, floor)
    if old is not None:
        log.info(
            "container %s: oomScoreAdj %d raised to %d, the daemon's own value (lowering it needs "
            "CAP_SYS_RESOURCE)",
            container_id,
            old,
            floor,
        )
        _write_atomically(bundle / "config.json", spec)
    return spec


def cgroups_path(spec: dict[str, Any]) -> str:
    """The spec's ``linux.cgroupsPath`` ("" when absent)."""
    linux = spec.get("linux")
    value = linux.get("cgroupsPath", "") if isinstance(linux, dict) else ""
    return value if isinstance(value, str) else ""
