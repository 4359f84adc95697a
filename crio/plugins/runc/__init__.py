"""OCI runtime handler plugin: runc (or any runc-compatible CLI such as crun) driven under conmon.

Serves handlers whose ``runtime_type`` is "oci" and returns ``None`` for every other type. Modules:
``conmon`` (the monitor's command line and sync protocol), ``runtime`` (the runtime CLI and its errors),
``lifecycle`` (create/start/kill/delete/state/update/wait), ``execsync``, ``execstream`` (streamed exec) and
``attach`` (conmon's attach socket and resize FIFO) over ``fdio``, ``logs`` (ReopenContainerLog),
``exits`` (inotify and pidfd waits, over ``inotify``), ``cgroups`` (the monitor's own cgroup), ``spec``
(config.json adjustments), ``pipes`` (non-blocking pipe reads) and ``listing`` (every container in the
handler's state directory, for the start-up sweep).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Mapping, Sequence
from typing import Any

from crio.core import proc
from crio.core.hookspecs import hookimpl
from crio.core.types import (
    ContainerBundle,
    ContainerRuntimeState,
    ExecResult,
    RuntimeContainer,
    RuntimeFeatures,
    RuntimeHandler,
    StdioSession,
)
from crio.plugins.runc import attach, execstream, execsync, exits, features, lifecycle, listing, logs

RUNTIME_TYPE = "oci"
FEATURES_TIMEOUT = 10.0


async def _features(handler: RuntimeHandler) -> RuntimeFeatures:
    result = await proc.run([handler.runtime_path, "features"], timeout=FEATURES_TIMEOUT)
    details: dict[str, Any] = json.loads(result.stdout or b"{}")
    # rro when the binary and the kernel can do it; never user namespaces (see features.py).
    return features.runtime_features(details)


def _ours(handler: RuntimeHandler) -> bool:
    return handler.runtime_type == RUNTIME_TYPE


@hookimpl
def crio_runtime_types() -> list[str]:
    """This plugin drives runc-compatible CLIs: runtime type "oci"."""
    return [RUNTIME_TYPE]


@hookimpl
def crio_runtime_features(handler: RuntimeHandler) -> Awaitable[RuntimeFeatures] | None:
    """Report the features of an "oci" handler from ``<runtime> features``."""
    if not _ours(handler):
        return None
    return _features(handler)


@hookimpl
def crio_runtime_create(
    handler: RuntimeHandler, container: ContainerBundle
) -> Awaitable[ContainerRuntimeState] | None:
    """Create the container under conmon (``runtime create`` through the monitor)."""
    if not _ours(handler):
        return None
    return lifecycle.create(handler, container)


@hookimpl
def crio_runtime_start(handler: RuntimeHandler, container: ContainerBundle) -> Awaitable[None] | None:
    """``runtime start``."""
    if not _ours(handler):
        return None
    return lifecycle.start(handler, container)


@hookimpl
def crio_runtime_kill(
    handler: RuntimeHandler, container: ContainerBundle, signal: int, all_processes: bool
) -> Awaitable[None] | None:
    """``runtime kill [--all]``; a container that already stopped is not an error."""
    if not _ours(handler):
        return None
    return lifecycle.kill(handler, container, signal, all_processes)


@hookimpl
def crio_runtime_delete(
    handler: RuntimeHandler, container: ContainerBundle, force: bool
) -> Awaitable[None] | None:
    """``runtime delete [--force]``, then the monitor's cgroup, attach symlink and exit file."""
    if not _ours(handler):
        return None
    return lifecycle.delete(handler, container, force)


@hookimpl
def crio_runtime_state(
    handler: RuntimeHandler, container: ContainerBundle
) -> Awaitable[ContainerRuntimeState] | None:
    """``runtime state``, completed from the exit file once the container has stopped."""
    if not _ours(handler):
        return None
    return lifecycle.state(handler, container)


@hookimpl
def crio_runtime_wait(
    handler: RuntimeHandler, container: ContainerBundle
) -> Awaitable[ContainerRuntimeState] | None:
    """Wait for the exit file (inotify) or the monitor's death (pidfd); resolve to the stopped state."""
    if not _ours(handler):
        return None
    return lifecycle.wait(handler, container)


@hookimpl
def crio_runtime_exec_sync(
    handler: RuntimeHandler,
    container: ContainerBundle,
    command: Sequence[str],
    timeout: float,
    output_limit: int,
) -> Awaitable[ExecResult] | None:
    """``runtime exec`` with capped output; on timeout the exec'd process is killed."""
    if not _ours(handler):
        return None
    return execsync.exec_sync(handler, container, command, timeout, output_limit)


@hookimpl
def crio_runtime_exec(
    handler: RuntimeHandler,
    container: ContainerBundle,
    command: Sequence[str],
    tty: bool,
    stdin: bool,
    stdout: bool,
    stderr: bool,
) -> Awaitable[StdioSession] | None:
    """``runtime exec`` in the foreground with pipes, or with a terminal crio allocates (see execstream)."""
    if not _ours(handler):
        return None
    return execstream.start(handler, container, command, tty, stdin, stdout, stderr)


@hookimpl
def crio_runtime_attach(
    handler: RuntimeHandler, container: ContainerBundle, stdin: bool, stdout: bool, stderr: bool
) -> Awaitable[StdioSession] | None:
    """Connect to conmon's attach socket; resizes go to conmon's ctl FIFO."""
    if not _ours(handler):
        return None
    return attach.attach(container, stdin, stdout, stderr)


@hookimpl
def crio_runtime_reopen_log(handler: RuntimeHandler, container: ContainerBundle) -> Awaitable[None] | None:
    """Ask conmon to reopen the CRI log file (``2 0 0`` on its ctl FIFO) and wait until it has."""
    if not _ours(handler):
        return None
    return logs.reopen_log(container)


@hookimpl
def crio_runtime_update(
    handler: RuntimeHandler, container: ContainerBundle, resources: Mapping[str, Any]
) -> Awaitable[None] | None:
    """``runtime update --resources -`` with the OCI linux.resources JSON."""
    if not _ours(handler):
        return None
    return lifecycle.update(handler, container, resources)


@hookimpl
def crio_runtime_list(handler: RuntimeHandler) -> Awaitable[Sequence[RuntimeContainer]] | None:
    """``runtime list --format json``, with the cgroup directories from runc's state files."""
    if not _ours(handler):
        return None
    return listing.list_containers(handler)


@hookimpl
def crio_shutdown() -> None:
    """Close the exit watcher of the daemon's loop."""
    exits.close_watcher()
