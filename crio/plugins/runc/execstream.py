"""Streamed exec (CRI Exec): ``runtime exec`` in the foreground with its stdio relayed to a client.

Without a terminal the command's stdin, stdout and stderr are pipes (or /dev/null for a stream the client
did not ask for). With a terminal, crio allocates a pseudo-terminal itself and hands the *slave* to the
runtime as its stdin/stdout/stderr; ``runc exec -t`` in the foreground then makes the container's own
terminal and copies between the two, forwarding the exit status. (The alternative, ``--console-socket``,
only works with ``--detach``, and a detached command is re-parented to the daemon, whose central reaper
would collect it as an orphan and lose its exit status.) A resize sets the size of crio's terminal and
sends SIGWINCH to the runtime, which copies the size onto the container's terminal.

The runtime logs to a file of its own (``--log``), so the only text it prints is a failure to start the
command ("exec failed: ..."), which reaches the client on stderr (the terminal with a TTY) with the
runtime's exit code, as a command that exits does.

``--pid-file`` names the exec'd process: :meth:`ExecSession.close` kills its process group and the
runtime's (the runtime runs in a session of its own) when the client goes away before the command ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import signal
import struct
import termios
import uuid
from collections.abc import Sequence
from pathlib import Path

from crio.core import errors, proc
from crio.core.types import STDERR, STDOUT, ContainerBundle, RuntimeHandler
from crio.plugins.runc import fdio
from crio.plugins.runc.execsync import KILL_GRACE, kill_process, read_pid
from crio.plugins.runc.runtime import RuntimeCLI

log = logging.getLogger(__name__)

DEFAULT_ROWS, DEFAULT_COLUMNS = 24, 80  # a terminal's size until the client sends its own


def set_window_size(fd: int, width: int, height: int) -> None:
    """TIOCSWINSZ: set a terminal's size in columns and rows."""
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", height, width, 0, 0))


class ExecSession:
    """One exec'd command and the daemon's ends of its stdio (a :class:`crio.core.types.StdioSession`)."""

    def __init__(
        self,
        runtime: proc.Spawned,
        outputs: list[tuple[int, int]],
        stdin_fd: int | None,
        terminal: int | None,
        pid_file: Path,
        log_file: Path,
    ) -> None:
        self.runtime = runtime
        self._outputs = outputs  # (STDOUT/STDERR, fd) still open
        self._stdin = stdin_fd
        self._terminal = terminal
        self.pid_file = pid_file
        self.log_file = log_file
        self._closed = False

    async def read(self) -> tuple[int, bytes]:
        """The next output chunk; ``(0, b"")`` once stdout and stderr (or the terminal) ended."""
        while self._outputs:
            tag, data = await fdio.read_any(self._outputs)
            if data:
                return tag, data
            fd = dict(self._outputs)[tag]
            self._outputs = [(t, f) for t, f in self._outputs if t != tag]
            if fd != self._terminal:
                os.close(fd)
        return 0, b""

    async def write(self, data: bytes) -> None:
        """Feed the command's stdin (dropped once it stopped reading)."""
        if self._stdin is not None and not await fdio.write_all(self._stdin, data):
            await self.close_stdin()

    async def close_stdin(self) -> None:
        """Close the stdin pipe; with a terminal stdin stays open (the terminal is also the output)."""
        if self._stdin is not None and self._stdin != self._terminal:
            os.close(self._stdin)
            self._stdin = None

    def resize(self, width: int, height: int) -> None:
        """Resize crio's terminal and have the runtime copy the size onto the container's terminal."""
        if self._terminal is None or width <= 0 or height <= 0:
            return
        with contextlib.suppress(OSError):
            set_window_size(self._terminal, width, height)
        if not self.runtime.exited.done():
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.runtime.pid, signal.SIGWINCH)

    async def wait(self) -> int | None:
        """The runtime's exit code, which is the command's (signals as 128+n)."""
        code = await asyncio.shield(self.runtime.exited)
        return code if code >= 0 else 128 - code

    async def close(self) -> None:
        """Kill the command (and the runtime) if still running; close every descriptor; remove the files."""
        if self._closed:
            return
        self._closed = True
        try:
            if not self.runtime.exited.done():
                await self.kill_process()
        finally:
            fds = {fd for _, fd in self._outputs}
            fds.update(fd for fd in (self._stdin, self._terminal) if fd is not None)
            self._outputs, self._stdin, self._terminal = [], None, None
            for fd in fds:
                with contextlib.suppress(OSError):
                    os.close(fd)
            self.pid_file.unlink(missing_ok=True)
            self.log_file.unlink(missing_ok=True)

    async def kill_process(self) -> None:
        exec_pid = read_pid(self.pid_file)
        if exec_pid is not None:
            kill_process(exec_pid, group=True)
            kill_process(exec_pid, group=False)
        kill_process(self.runtime.pid, group=True)
        try:
            await asyncio.wait_for(asyncio.shield(self.runtime.exited), KILL_GRACE)
        except TimeoutError:
            log.warning("runtime exec pid %d did not exit after SIGKILL", self.runtime.pid)
        late = read_pid(self.pid_file) if exec_pid is None else None
        if late is not None:  # it started while we were killing
            kill_process(late, group=True)
            kill_process(late, group=False)


def _pipe(grow: bool = False) -> tuple[int, int]:
    read_end, write_end = os.pipe2(os.O_CLOEXEC)
    if grow:
        fdio.grow_pipe(read_end)
    return read_end, write_end


async def start(
    handler: RuntimeHandler,
    container: ContainerBundle,
    command: Sequence[str],
    tty: bool,
    stdin: bool,
    stdout: bool,
    stderr: bool,
) -> ExecSession:
    """Start ``command`` in the container and return its session."""
    if not command:
        raise errors.InvalidArgument(f"exec in container {container.id}: empty command")
    tag = uuid.uuid4().hex[:12]
    pid_file = container.bundle / f"exec-{tag}.pid"
    log_file = container.bundle / f"exec-{tag}.log"
    cli = RuntimeCLI(handler)
    args = ["exec", "--pid-file", str(pid_file)]
    if tty:
        args += ["--tty", "--env", "TERM=xterm"]
    argv = [cli.path, *cli.global_args(), "--log", str(log_file), "--log-format", "text", *args]
    argv += [container.id, *command]
    mine: list[int] = []  # the daemon's ends, closed on failure
    theirs: list[int] = []  # the runtime's ends, closed once it started
    terminal: int | None = None
    stdin_fd: int | None = None
    child_in: int | None = None
    child_out: int | None = None
    child_err: int | None = None
    outputs: list[tuple[int, int]] = []
    try:
        if tty:
            terminal, slave = os.openpty()
            mine.append(terminal)
            theirs.append(slave)
            set_window_size(terminal, DEFAULT_COLUMNS, DEFAULT_ROWS)
            child_in = child_out = child_err = slave
            outputs.append((STDOUT, terminal))
            stdin_fd = terminal
        else:
            if stdin:
                child_in, stdin_fd = _pipe()
                theirs.append(child_in)
                mine.append(stdin_fd)
            if stdout:
                out_r, child_out = _pipe(grow=True)
                mine.append(out_r)
                theirs.append(child_out)
                outputs.append((STDOUT, out_r))
            if stderr:
                err_r, child_err = _pipe()
                mine.append(err_r)
                theirs.append(child_err)
                outputs.append((STDERR, err_r))
        for fd in mine:
            os.set_blocking(fd, False)
        log.debug("container %s: %s", container.id, " ".join(argv))
        runtime = proc.spawn(argv, stdin=child_in, stdout=child_out, stderr=child_err, new_session=True)
    except proc.ProcessError as exc:
        for fd in mine:
            os.close(fd)
        raise errors.Internal(f"exec in container {container.id}: {exc}") from None
    except BaseException:
        for fd in mine:
            os.close(fd)
        raise
    finally:
        for fd in theirs:
            os.close(fd)
    return ExecSession(runtime, outputs, stdin_fd, terminal, pid_file, log_file)
