"""Child processes for the daemon and its plugins: spawning, output capture and one central reaper.

The daemon is a child subreaper (PR_SET_CHILD_SUBREAPER), so orphans of its children (daemonized
monitors, processes left by a killed exec) are re-parented to it. One SIGCHLD handler reaps *every* child
with ``waitpid(-1)``: processes started through :func:`run` get their exit status delivered; orphans are
reaped at once, so none lingers as a zombie. Consequently all child processes of the daemon must be
started through this module (not ``subprocess`` or ``asyncio.create_subprocess_exec``), which plugins
may use as part of the core API.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import signal
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

PR_SET_CHILD_SUBREAPER = 36


@dataclass(frozen=True)
class Completed:
    """A finished process: its exit code (negative: killed by that signal) and captured output."""

    argv: tuple[str, ...]
    returncode: int
    stdout: bytes
    stderr: bytes


class ProcessError(Exception):
    """A process exited non-zero (or could not be started); the message carries its stderr."""

    def __init__(self, argv: Sequence[str], returncode: int, stderr: bytes | str) -> None:
        text = stderr.decode(errors="replace") if isinstance(stderr, bytes) else stderr
        super().__init__(f"{os.path.basename(argv[0])} exited with {returncode}: {text.strip()}")
        self.argv = tuple(argv)
        self.returncode = returncode
        self.stderr = text


class Reaper:
    """Reaps every child of the process on SIGCHLD and resolves the exit futures of watched pids."""

    def __init__(self) -> None:
        self._waiters: dict[int, asyncio.Future[int]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self.orphans_reaped = 0

    def install(self, loop: asyncio.AbstractEventLoop) -> None:
        """Handle SIGCHLD on ``loop`` (idempotent)."""
        if self._loop is loop:
            return
        self._loop = loop
        loop.add_signal_handler(signal.SIGCHLD, self.reap)

    def uninstall(self) -> None:
        """Stop handling SIGCHLD."""
        if self._loop is not None and not self._loop.is_closed():
            self._loop.remove_signal_handler(signal.SIGCHLD)
        self._loop = None

    def watch(self, pid: int) -> asyncio.Future[int]:
        """Return a future for ``pid``'s exit code; call it on the loop thread right after the fork."""
        assert self._loop is not None, "Reaper.install() was not called"
        future: asyncio.Future[int] = self._loop.create_future()
        self._waiters[pid] = future
        return future

    def reap(self) -> None:
        """Collect every exited child without blocking."""
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            code = os.waitstatus_to_exitcode(status)
            future = self._waiters.pop(pid, None)
            if future is None:
                self.orphans_reaped += 1
                log.debug("reaped orphan pid=%d status=%d", pid, code)
            elif not future.done():
                future.set_result(code)


REAPER = Reaper()


def become_subreaper() -> bool:
    """Make this process a child subreaper so orphaned descendants are re-parented to it."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        log.warning("prctl(PR_SET_CHILD_SUBREAPER) failed: %s", os.strerror(ctypes.get_errno()))
        return False
    return True


async def _read_all(fd: int, limit: int) -> bytes:
    """Read a pipe to EOF without blocking the loop, keeping at most ``limit`` bytes."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=2**20)
    transport, _ = await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(fd, "rb", buffering=0)
    )
    chunks: list[bytes] = []
    kept = 0
    try:
        while chunk := await reader.read(65536):
            if kept < limit:
                chunks.append(chunk[: limit - kept])
                kept += len(chunks[-1])
    finally:
        transport.close()
    return b"".join(chunks)


async def run(
    argv: Sequence[str],
    *,
    stdin: bytes | None = None,
    env: Mapping[str, str] | None = None,
    cwd: str | None = None,
    timeout: float | None = None,
    output_limit: int = 16 * 2**20,
    check: bool = True,
) -> Completed:
    """Run ``argv`` to completion without blocking the event loop and return its output.

    ``stdin`` is written to the process (then closed); stdout and stderr are each captured up to
    ``output_limit`` bytes (the rest is read and dropped). On ``timeout`` the process is killed and
    :class:`TimeoutError` raised. With ``check`` a non-zero exit raises :class:`ProcessError`.
    """
    loop = asyncio.get_running_loop()
    REAPER.install(loop)
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    in_r, in_w = os.pipe() if stdin is not None else (subprocess.DEVNULL, -1)
    try:
        popen = subprocess.Popen(  # registered with the reaper below, before the loop runs again
            list(argv),
            stdin=in_r,
            stdout=out_w,
            stderr=err_w,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            close_fds=True,
            start_new_session=False,
        )
    except OSError as exc:
        for fd in (out_r, out_w, err_r, err_w, in_w, in_r):
            if fd >= 0:
                os.close(fd)
        raise ProcessError(argv, 127, f"cannot execute: {exc.strerror}") from None
    exited = REAPER.watch(popen.pid)
    popen.returncode = 0  # the reaper owns waitpid(); keep Popen from ever waiting or warning
    for fd in (out_w, err_w) + ((in_r,) if stdin is not None else ()):
        os.close(fd)
    if stdin is not None:
        loop.run_in_executor(None, _write_and_close, in_w, stdin)
    readers = asyncio.gather(_read_all(out_r, output_limit), _read_all(err_r, output_limit))
    try:
        returncode = await asyncio.wait_for(asyncio.shield(exited), timeout)
        stdout, stderr = await asyncio.wait_for(readers, timeout)
    except (TimeoutError, asyncio.CancelledError):
        _kill(popen.pid, exited)
        readers.cancel()
        readers.add_done_callback(_consume)
        raise
    result = Completed(tuple(argv), returncode, stdout, stderr)
    if check and returncode != 0:
        raise ProcessError(argv, returncode, stderr)
    return result


def _consume(future: asyncio.Future[Any]) -> None:
    """Retrieve a cancelled future's outcome so asyncio does not report it as never retrieved."""
    if not future.cancelled():
        future.exception()


def _kill(pid: int, exited: asyncio.Future[int]) -> None:
    if not exited.done():
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _write_and_close(fd: int, data: bytes) -> None:
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
    except BrokenPipeError:
        pass


@dataclass(frozen=True)
class Spawned:
    """A started process that nobody waits on synchronously: its pid and its exit future.

    ``exited`` is resolved by the central reaper with the exit code (negative: killed by that signal).
    """

    pid: int
    exited: asyncio.Future[int]


def spawn(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    cwd: str | None = None,
    pass_fds: Sequence[int] = (),
    stdin: int | None = None,
    stdout: int | None = None,
    stderr: int | None = None,
    new_session: bool = False,
) -> Spawned:
    """Start ``argv`` and return at once with its pid and exit future; call it on the loop thread.

    stdin, stdout and stderr are /dev/null unless a file descriptor is given (the caller keeps and closes its
    own copy). ``pass_fds`` stay open in the child under the same numbers (e.g. a sync pipe
    named in an environment variable). ``new_session`` makes the child a session and process-group leader,
    so the caller can signal the whole group. Unlike :func:`run`, nothing is captured or awaited here: this
    suits daemonizing monitors and processes whose output goes to pipes the caller reads itself.
    """
    loop = asyncio.get_running_loop()
    REAPER.install(loop)
    try:
        popen = subprocess.Popen(  # registered with the reaper below, before the loop runs again
            list(argv),
            stdin=subprocess.DEVNULL if stdin is None else stdin,
            stdout=subprocess.DEVNULL if stdout is None else stdout,
            stderr=subprocess.DEVNULL if stderr is None else stderr,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            close_fds=True,
            pass_fds=tuple(pass_fds),
            start_new_session=new_session,
        )
    except OSError as exc:
        raise ProcessError(argv, 127, f"cannot execute: {exc.strerror}") from None
    exited = REAPER.watch(popen.pid)
    popen.returncode = 0  # the reaper owns waitpid(); keep Popen from ever waiting or warning
    return Spawned(popen.pid, exited)
