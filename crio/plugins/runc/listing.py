"""Every container in a handler's runtime state directory, for the start-up sweep (``crio_runtime_list``).

``runtime list --format json`` (runc and crun print the same fields: id, pid, status, bundle, annotations)
gives the containers; runc's own ``<root>/<id>/state.json`` adds the cgroup directories it made for each
(``cgroup_paths``), so that a caller can remove what a force-delete left of them. A runtime without such
a file (crun) reports no cgroup directories. The list is not filtered: the state directory may be shared
with other daemons and tools, and the caller decides what is its own.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from crio.core import errors
from crio.core.types import RuntimeContainer, RuntimeHandler
from crio.plugins.runc.runtime import RuntimeCLI, error_text

STATE_FILE = "state.json"
# Where runc-compatible runtimes keep their state when run as root without --root: /run/<binary name>.
DEFAULT_ROOT_PARENT = Path("/run")


def state_root(handler: RuntimeHandler) -> Path:
    """The handler's state directory: its ``runtime_root``, else the runtime's default for root."""
    return (
        Path(handler.runtime_root)
        if handler.runtime_root
        else DEFAULT_ROOT_PARENT / Path(handler.runtime_path).name
    )


def parse_list(stdout: bytes) -> list[RuntimeContainer]:
    """The containers of ``runtime list --format json`` (``null`` or nothing: none).

    Raises ValueError when the output is not such a list.
    """
    raw = json.loads(stdout or b"null")
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise ValueError("not a JSON list")
    found = []
    for item in raw:
        if not isinstance(item, dict) or not isinstance(item.get("id"), str) or not item["id"]:
            raise ValueError(f"not a container: {item!r}")
        annotations = item.get("annotations") or {}
        found.append(
            RuntimeContainer(
                id=item["id"],
                status=str(item.get("status", "")),
                pid=int(item.get("pid") or 0),
                bundle=str(item.get("bundle", "")),
                annotations={str(k): str(v) for k, v in annotations.items()}
                if isinstance(annotations, dict)
                else {},
            )
        )
    return found


def cgroup_paths(state: Mapping[str, Any]) -> tuple[str, ...]:
    """The absolute cgroup directories of a runc ``state.json`` (its ``cgroup_paths`` map), sorted."""
    paths = state.get("cgroup_paths")
    if not isinstance(paths, dict):
        return ()
    return tuple(sorted({str(p) for p in paths.values() if isinstance(p, str) and p.startswith("/")}))


def with_cgroup_paths(found: list[RuntimeContainer], root: Path) -> list[RuntimeContainer]:
    """Add the cgroup directories from each container's state file (blocking: run in a worker thread)."""
    completed = []
    for container in found:
        paths: tuple[str, ...] = ()
        if "/" not in container.id:
            try:
                state = json.loads((root / container.id / STATE_FILE).read_bytes())
            except (OSError, ValueError):
                state = None
            if isinstance(state, dict):
                paths = cgroup_paths(state)
        completed.append(replace(container, cgroup_paths=paths))
    return completed


async def list_containers(handler: RuntimeHandler) -> list[RuntimeContainer]:
    """``runtime list --format json`` with each container's cgroup directories."""
    cli = RuntimeCLI(handler)
    result = await cli.run("list containers", ["list", "--format", "json"])
    if result.returncode != 0:
        raise errors.Internal(
            f"list containers: {error_text(result.stderr) or f'{cli.path} failed without a message'}"
        )
    try:
        found = parse_list(result.stdout)
    except (ValueError, TypeError) as exc:
        raise errors.Internal(f"list containers: unexpected output of {cli.path} list: {exc}") from None
    return await asyncio.to_thread(with_cgroup_paths, found, state_root(handler))
