"""Synchronous exec: ``runtime exec`` with captured, capped output and a timeout that leaves nothing running.

``--pid-file`` names the exec'd process. runc makes it a session and process-group leader (``setsid`` in
``runc init``), so on timeout its whole process group is killed, which takes its background children
along; the runtime itself runs in a session of its own and is killed as a group too (a runtime that does
not ``setsid`` leaves the exec'd process in that group). Output beyond ``output_limit`` is read and
dropped, so a chatty command never blocks on a full pipe.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import uuid
from collections.abc import Sequence
from pathlib import Path

from crio.core import errors, proc
from crio.core.types import ContainerBundle, ExecResult, RuntimeHandler
from crio.plugins.runc.pipes import read_capped
from crio.plugins.runc.runtime import RuntimeCLI, classify, error_text

log = logging.getLogger(__name__)

KILL_GRACE = 5.0  # after SIGKILL: how long to wait for the runtime to exit
DRAIN_GRACE = 2.0  # after the runtime exits: how long to wait for EOF (a leftover holding the pipe)


def kill_process(pid: int, group: bool) -> None:
    """SIGKILL ``pid`` (its whole process group with ``group``); a process already gone is fine."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        if group:
            os.killpg(pid, signal.SIGKILL)
        else:
            os.kill(pid, signal.SIGKILL)


def read_pid(pid_file: Path) -> int | None:
    """The pid the runtime wrote to ``pid_file``, or None while it is missing or incomplete."""
    try:
        return int(pid_file.read_text().strip())
    except (OSError, ValueError):
        return None


async def exec_sync(
    handler: RuntimeHandler,
    container: ContainerBundle,
    command: Sequence[str],
    timeout: float,
    output_limit: int,
) -> ExecResult:
    """Run ``command`` in the container; on timeout kill it and raise DeadlineExceeded."""
    if not command:
        raise errors.InvalidArgument(f"exec in container {container.id}: empty command")
    cli = RuntimeCLI(handler)
    pid_file = container.bundle / f"exec-{uuid.uuid4().hex[:12]}.pid"
    argv = cli.argv("exec", "--pid-file", str(pid_file), container.id, *command)
    out_r, out_w = os.pipe2(os.O_CLOEXEC)
    err_r, err_w = os.pipe2(os.O_CLOEXEC)
    try:
        runtime = proc.spawn(argv, stdout=out_w, stderr=err_w, new_session=True)
    except proc.ProcessError as exc:
        for fd in (out_r, err_r):
            os.close(fd)
        raise errors.Internal(f"exec in container {container.id}: {exc}") from None
    finally:
        os.close(out_w)
        os.close(err_w)
    limit = max(0, output_limit)
    readers = asyncio.gather(read_capped(out_r, limit), read_capped(err_r, limit))
    try:
        try:
            code = await asyncio.wait_for(asyncio.shield(runtime.exited), timeout if timeout > 0 else None)
        except (TimeoutError, asyncio.CancelledError) as exc:
            await _kill_exec(runtime, pid_file)
            if isinstance(exc, TimeoutError):
                raise errors.DeadlineExceeded(
                    f"exec in container {container.id}: command timed out after {timeout:g}s"
                ) from None
            raise
        try:
            stdout, stderr = await asyncio.wait_for(asyncio.shield(readers), DRAIN_GRACE)
        except TimeoutError:  # something the command left behind still holds its output pipes
            log.warning("exec in container %s: output still open after exit; dropping it", container.id)
            stdout, stderr = b"", b""
        started = read_pid(pid_file) is not None
    finally:
        if not readers.done():
            readers.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await readers
        pid_file.unlink(missing_ok=True)
    if not started and code != 0:
        raise classify("exec in", container.id, error_text(stderr) or f"runtime exited with {code}")
    return ExecResult(exit_code=code if code >= 0 else 128 - code, stdout=stdout, stderr=stderr)


async def _kill_exec(runtime: proc.Spawned, pid_file: Path) -> None:
    """Kill the exec'd process (pid file) and the runtime's whole process group; wait for the runtime."""
    exec_pid = read_pid(pid_file)
    if exec_pid is not None:
        kill_process(exec_pid, group=True)
        kill_process(exec_pid, group=False)
    kill_process(runtime.pid, group=True)
    try:
        await asyncio.wait_for(asyncio.shield(runtime.exited), KILL_GRACE)
    except TimeoutError:
        log.warning("runtime exec pid %d did not exit after SIGKILL", runtime.pid)
    if exec_pid is None:  # the process may have started while we killed: one more look
        late = read_pid(pid_file)
        if late is not None:
            kill_process(late, group=True)
            kill_process(late, group=False)
