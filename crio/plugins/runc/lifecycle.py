"""Container lifecycle for runtime type "oci": create under conmon, start, kill, delete, state, update, wait.

Failure leaves nothing behind: a create that fails or times out kills its monitor, force-deletes whatever
the runtime created and removes the monitor cgroup, the attach symlink and the handler's files. Delete does
the same once the monitor has exited. A monitor cgroup is removed only when it is the container's own (its
last component contains the container ID); a shared one such as ``/crio-monitors`` stays.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from crio.core import errors
from crio.core.types import ContainerBundle, ContainerRuntimeState, RuntimeHandler
from crio.plugins.runc import cgroups, conmon, exits, pipes, spec
from crio.plugins.runc.runtime import RuntimeCLI, error_text

log = logging.getLogger(__name__)

MONITOR_EXIT_GRACE = 5.0  # how long delete and state wait for a monitor that is writing the exit file
FAILED_MONITOR_GRACE = 1.0  # how long a failed create waits for conmon to exit on its own


async def create(handler: RuntimeHandler, container: ContainerBundle) -> ContainerRuntimeState:
    """Create the container under conmon; resolve to status "created" and the container's pid."""
    if not handler.monitor_path:
        raise errors.InvalidArgument(f"runtime handler {handler.name!r} has no monitor (conmon) path")
    if not (container.bundle / "config.json").is_file():
        raise errors.InvalidArgument(f"container {container.id}: no config.json in {container.bundle}")
    try:
        config = await asyncio.to_thread(spec.prepare, container.bundle, container.id)
    except (OSError, ValueError) as exc:
        raise errors.InvalidArgument(f"container {container.id}: unreadable config.json: {exc}") from None
    if container.monitor_cgroup:
        try:
            clash = cgroups.overlaps(container.monitor_cgroup, spec.cgroups_path(config))
        except ValueError as exc:
            raise errors.InvalidArgument(f"container {container.id}: {exc}") from None
        if clash:
            raise errors.InvalidArgument(
                f"container {container.id}: monitor cgroup {container.monitor_cgroup!r} is inside the "
                f"container's cgroup {spec.cgroups_path(config)!r}"
            )
    await _refuse_existing(handler, container)
    for stale in (container.pid_file, conmon.conmon_pid_file(container), container.exit_file):
        stale.unlink(missing_ok=True)
    limit = handler.container_create_timeout if handler.container_create_timeout > 0 else None
    try:
        pid = await asyncio.wait_for(_create_under_conmon(handler, container), limit)
    except BaseException as exc:
        await asyncio.shield(_undo_create(handler, container))
        if isinstance(exc, TimeoutError):
            raise errors.DeadlineExceeded(
                f"container {container.id}: create did not finish within {handler.container_create_timeout}s"
            ) from None
        raise
    conmon.conmon_stderr_file(container).unlink(missing_ok=True)
    return ContainerRuntimeState(status="created", pid=pid)


async def _refuse_existing(handler: RuntimeHandler, container: ContainerBundle) -> None:
    """A second create of a live container must fail without touching it (its undo would destroy it)."""
    monitor = conmon.monitor_pid(container)
    if monitor is not None:
        raise errors.AlreadyExists(f"container {container.id} already exists (monitor pid {monitor})")
    known = await RuntimeCLI(handler).state(container.id)
    if known is not None:
        raise errors.AlreadyExists(
            f"container {container.id} already exists (status {known.get('status')!r})"
        )


async def _create_under_conmon(handler: RuntimeHandler, container: ContainerBundle) -> int:
    try:
        monitor, sync_r, start_w = conmon.start(handler, container)
    except Exception as exc:  # conmon cannot be executed, or the bundle is not writable
        raise errors.Internal(f"container {container.id}: cannot run {handler.monitor_path}: {exc}") from None
    released = False
    try:
        if container.monitor_cgroup:
            await _place_monitor(container, monitor.pid)
        conmon.release(start_w)
        released = True
        first = await asyncio.shield(monitor.exited)
        if first != 0:
            raise errors.Internal(
                f"container {container.id}: conmon exited with {first}"
                + _suffix(conmon.first_stderr(container) or "no message")
            )
        line = await pipes.read_line(sync_r)
    except BaseException:
        if not monitor.exited.done():  # still blocked on its start pipe: it must not go on
            with contextlib.suppress(ProcessLookupError):
                os.kill(monitor.pid, signal.SIGKILL)
        raise
    finally:
        os.close(sync_r)
        if not released:
            os.close(start_w)
    if not line.strip():
        raise errors.Internal(
            f"container {container.id}: conmon exited without reporting the container's pid"
            + _suffix(conmon.first_stderr(container))
        )
    try:
        result = conmon.parse_sync(line)
    except ValueError as exc:
        raise errors.Internal(f"container {container.id}: unexpected message from conmon: {exc}") from None
    if result.pid <= 0:
        raise errors.Internal(
            f"container create failed: {error_text(result.message) or 'the runtime gave no reason'}"
        )
    return result.pid


async def _place_monitor(container: ContainerBundle, pid: int) -> None:
    """Move the (still blocked) first conmon process into the monitor cgroup; its children inherit it."""
    try:
        await asyncio.to_thread(cgroups.move_pid, pid, container.monitor_cgroup)
    except (OSError, ValueError) as exc:
        raise errors.Internal(
            f"container {container.id}: cannot place conmon in cgroup {container.monitor_cgroup}: {exc}"
            + _suffix(conmon.first_stderr(container))
        ) from None


def _suffix(text: str) -> str:
    return f": {text}" if text else ""


async def _undo_create(handler: RuntimeHandler, container: ContainerBundle) -> None:
    """Leave nothing of a failed create: monitor, runtime state, cgroup, symlink, files, the new log."""
    await _stop_monitor(handler, container, FAILED_MONITOR_GRACE)
    try:
        await RuntimeCLI(handler).delete(container.id, force=True)
    except errors.CrioError as exc:
        log.warning("container %s: cleaning up a failed create: %s", container.id, exc)
    await _forget(container)
    if container.log_path:  # conmon created it; CRI-O removes it too
        with contextlib.suppress(OSError):
            os.unlink(container.log_path)


async def _stop_monitor(handler: RuntimeHandler, container: ContainerBundle, grace: float) -> None:
    """Give the container's monitor ``grace`` seconds to exit on its own, then SIGKILL it.

    A monitor that is exiting right now counts: it is still in the monitor cgroup until it is gone.
    """
    pid = conmon.monitor_pid(container, exiting_name=Path(handler.monitor_path).name)
    if pid is None:
        return
    try:
        await asyncio.wait_for(exits.wait_pid(pid), grace)
        return
    except TimeoutError:
        log.warning("container %s: monitor %d still running; killing it", container.id, pid)
    conmon.kill_monitor(container)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(exits.wait_pid(pid), MONITOR_EXIT_GRACE)


def _own_monitor_cgroup(container: ContainerBundle) -> bool:
    """Whether the monitor cgroup is this container's alone (its last component names the container, as
    in CRI-O's ``crio-conmon-<id>``); a shared one (e.g. ``/crio-monitors``) is never removed, so a delete
    cannot race a concurrent create that is about to move its monitor there."""
    leaf = container.monitor_cgroup.rstrip("/").rpartition("/")[2]
    return bool(container.monitor_cgroup) and container.id in leaf


async def _forget(container: ContainerBundle) -> None:
    """Remove what the handler created outside the runtime's own state."""

    def remove() -> None:
        if _own_monitor_cgroup(container):
            with contextlib.suppress(ValueError):
                cgroups.remove(container.monitor_cgroup)
        link = container.attach_dir / container.id
        with contextlib.suppress(OSError):
            if link.is_symlink() and Path(os.readlink(link)) == container.bundle:
                link.unlink()
        files = [container.pid_file, conmon.conmon_pid_file(container), conmon.conmon_stderr_file(container)]
        files += [container.bundle / name for name in conmon.MONITOR_FILES]
        files += [container.exit_file, container.bundle / "exit", container.bundle / "oom"]
        for path in files:
            with contextlib.suppress(OSError):
                path.unlink()

    await asyncio.to_thread(remove)


async def start(handler: RuntimeHandler, container: ContainerBundle) -> None:
    """``runtime start``."""
    await RuntimeCLI(handler).start(container.id)


async def kill(handler: RuntimeHandler, container: ContainerBundle, signum: int, all_processes: bool) -> None:
    """``runtime kill``; a stopped or unknown container is not an error."""
    await RuntimeCLI(handler).kill(container.id, signum, all_processes)


async def delete(handler: RuntimeHandler, container: ContainerBundle, force: bool) -> None:
    """``runtime delete``, then the monitor (once it has exited), its cgroup and the handler's files.

    The exit file goes too: read the state before deleting.
    """
    await RuntimeCLI(handler).delete(container.id, force)
    await _stop_monitor(handler, container, MONITOR_EXIT_GRACE)
    await _forget(container)


def _stopped(container: ContainerBundle, status: exits.ExitStatus | None) -> ContainerRuntimeState:
    oom = (container.bundle / "oom").exists()  # conmon marks an OOM kill in its persist dir
    if status is None:
        return ContainerRuntimeState(status="stopped", oom_killed=oom)
    return ContainerRuntimeState(
        status="stopped", exit_code=status.code, finished_at=status.finished_at, oom_killed=oom
    )


async def state(handler: RuntimeHandler, container: ContainerBundle) -> ContainerRuntimeState:
    """The runtime's status and pid; once stopped, the exit code and finish time from the exit file.

    Raises NotFound when the runtime does not know the container and there is no exit file.
    """
    current = await RuntimeCLI(handler).state(container.id)
    if current is not None and current.get("status") != "stopped":
        return ContainerRuntimeState(str(current.get("status", "unknown")), int(current.get("pid", 0)))
    status = await asyncio.to_thread(exits.read_exit_file, container.exit_file)
    if status is None and conmon.monitor_pid(container) is not None:
        # The process is gone and conmon is about to write the exit file.
        with contextlib.suppress(TimeoutError, OSError):
            await asyncio.wait_for(exits.wait_exit(container.exit_file), MONITOR_EXIT_GRACE)
        status = await asyncio.to_thread(exits.read_exit_file, container.exit_file)
    if current is None and status is None:
        raise errors.NotFound(f"container {container.id} is not known to {handler.runtime_path}")
    return _stopped(container, status)


async def update(handler: RuntimeHandler, container: ContainerBundle, resources: Mapping[str, Any]) -> None:
    """``runtime update --resources -``."""
    await RuntimeCLI(handler).update(container.id, resources)


async def wait(handler: RuntimeHandler, container: ContainerBundle) -> ContainerRuntimeState:
    """Wait until the container has exited (exit file written); resolve to its stopped state.

    Raises Unavailable when the monitor died without writing the exit file (nobody will).
    """
    started = time.monotonic()
    exit_wait = asyncio.ensure_future(exits.wait_exit(container.exit_file))
    monitor = conmon.monitor_pid(container, exiting_name=Path(handler.monitor_path).name)
    monitor_wait = asyncio.ensure_future(exits.wait_pid(monitor) if monitor is not None else asyncio.sleep(0))
    try:
        await asyncio.wait({exit_wait, monitor_wait}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (exit_wait, monitor_wait):
            if not task.done():
                task.cancel()
        await asyncio.gather(exit_wait, monitor_wait, return_exceptions=True)
    if exit_wait.done() and not exit_wait.cancelled() and isinstance(exit_wait.exception(), OSError):
        raise errors.NotFound(f"container {container.id}: {exit_wait.exception()}")
    status = await asyncio.to_thread(exits.read_exit_file, container.exit_file)
    if status is None:
        raise errors.Unavailable(
            f"container {container.id}: its monitor is gone without writing {container.exit_file}"
        )
    waited = time.monotonic() - started
    log.debug("container %s exited with %d (waited %.3fs)", container.id, status.code, waited)
    return _stopped(container, status)
