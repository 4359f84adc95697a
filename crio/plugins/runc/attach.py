"""Attach (CRI Attach) through conmon's attach socket, and terminal resizes through conmon's ``ctl`` FIFO.

conmon (``--socket-dir-path DIR -u ID``) makes ``DIR/ID`` a symbolic link to the bundle directory and
listens on ``attach`` there: a ``SOCK_SEQPACKET`` unix socket. Every packet it sends carries one chunk of
the container's output behind one byte naming the pipe (2: stdout, 3: stderr; with a terminal everything
is stdout). Bytes sent to it go to the container's stdin (when the container has one); shutting down the
sending side makes conmon close the container's stdin if it was created ``stdin_once`` (no
``--leave-stdin-open``). The socket's path can exceed the 108 bytes of a unix socket address, so it is
reached as ``/proc/self/fd/<fd of DIR/ID>/attach``, as conmon binds it.

A resize is the line ``1 <rows> <columns>`` on the FIFO ``ctl`` in the bundle (2 is "reopen the log").
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import socket

from crio.core import errors
from crio.core.types import STDERR, STDOUT, ContainerBundle

log = logging.getLogger(__name__)

ATTACH_SOCKET = "attach"
CONTROL_FIFO = "ctl"
PIPE_STDOUT, PIPE_STDERR = 2, 3  # conmon's stdpipe_t
RESIZE_EVENT = 1
PACKET_SIZE = 64 * 1024  # larger than any packet conmon sends (one byte + its 8 KiB read buffer)
STDIN_CHUNK = 8192  # conmon reads one packet into a fixed buffer: never send more at once


def control_message(width: int, height: int) -> bytes:
    """The ``ctl`` line that resizes the container's terminal."""
    return f"{RESIZE_EVENT} {height} {width}\n".encode()


def resize_terminal(container: ContainerBundle, width: int, height: int) -> None:
    """Ask conmon to resize the container's terminal (best effort: conmon may be gone)."""
    try:
        fd = os.open(container.bundle / CONTROL_FIFO, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        log.debug("container %s: cannot open the control fifo: %s", container.id, exc)
        return
    try:
        os.write(fd, control_message(width, height))
    except OSError as exc:
        log.debug("container %s: resize not delivered: %s", container.id, exc)
    finally:
        os.close(fd)


def _socket_directory(container: ContainerBundle) -> int:
    """An O_PATH descriptor of the directory holding the attach socket (conmon's link, else the bundle)."""
    for directory in (container.attach_dir / container.id, container.bundle):
        try:
            return os.open(directory, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError:
            continue
    raise errors.FailedPrecondition(f"attach to container {container.id}: its monitor has no attach socket")


class AttachSession:
    """A connection to conmon's attach socket (a :class:`crio.core.types.StdioSession`)."""

    def __init__(
        self, container: ContainerBundle, sock: socket.socket, stdin: bool, stdout: bool, stderr: bool
    ) -> None:
        self.container = container
        self.sock = sock
        self._wanted = {PIPE_STDOUT: STDOUT if stdout else 0, PIPE_STDERR: STDERR if stderr else 0}
        # Without stdin (the client's or the container's) nothing is sent; the sending side stays open, since
        # shutting it down would close a stdin_once container's stdin for other clients.
        self._input_open = stdin and container.stdin
        self._ended = False

    async def read(self) -> tuple[int, bytes]:
        """The next output chunk of the container; ``(0, b"")`` when conmon closes (the container exited)."""
        loop = asyncio.get_running_loop()
        while not self._ended:
            try:
                packet = await loop.sock_recv(self.sock, PACKET_SIZE)
            except OSError as exc:
                log.debug("attach %s: %s", self.container.id, exc)
                packet = b""
            if not packet:
                self._ended = True
                break
            tag = self._wanted.get(packet[0], 0)
            if tag and len(packet) > 1:
                return tag, packet[1:]
        return 0, b""

    async def write(self, data: bytes) -> None:
        """Send input to the container's stdin (dropped when it has none)."""
        if not self._input_open:
            return
        loop = asyncio.get_running_loop()
        view = memoryview(data)
        try:
            for start in range(0, len(view), STDIN_CHUNK):
                await loop.sock_sendall(self.sock, view[start : start + STDIN_CHUNK])
        except OSError as exc:
            if exc.errno not in (errno.EPIPE, errno.ECONNRESET, errno.ENOTCONN):
                raise
            self._input_open = False

    async def close_stdin(self) -> None:
        """End this attach's input (conmon closes a ``stdin_once`` container's stdin)."""
        if self._input_open:
            self._input_open = False
            with contextlib.suppress(OSError):
                self.sock.shutdown(socket.SHUT_WR)

    def resize(self, width: int, height: int) -> None:
        """Resize the container's terminal through conmon."""
        if self.container.terminal and width > 0 and height > 0:
            resize_terminal(self.container, width, height)

    async def wait(self) -> int | None:
        """Nothing to wait for: an attach ends with the container's output."""
        return None

    async def close(self) -> None:
        """Disconnect from conmon (the container keeps running)."""
        self.sock.close()


async def attach(container: ContainerBundle, stdin: bool, stdout: bool, stderr: bool) -> AttachSession:
    """Connect to the container's attach socket."""
    dir_fd = _socket_directory(container)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
    sock.setblocking(False)
    try:
        await asyncio.get_running_loop().sock_connect(sock, f"/proc/self/fd/{dir_fd}/{ATTACH_SOCKET}")
    except OSError as exc:
        sock.close()
        raise errors.FailedPrecondition(
            f"attach to container {container.id}: cannot connect to its monitor: {exc.strerror or exc}"
        ) from None
    finally:
        os.close(dir_fd)
    return AttachSession(container, sock, stdin, stdout, stderr)
