"""TCP connections to ``localhost:port`` inside a pod's network namespace (or the host's, for host-network
pods).

A socket belongs to the network namespace of the thread that created it, for its whole life. So a
short-lived dedicated thread (never a pool's: its namespace must not outlive the call) enters the pod's
pinned namespace with ``setns(2)``, creates the socket and exits; the event loop's thread never changes
namespace and the connection itself is made on the loop. IPv4 is tried first, then IPv6.
"""

from __future__ import annotations

import asyncio
import ctypes
import errno
import logging
import os
import socket
import threading

log = logging.getLogger(__name__)

CLONE_NEWNET = 0x40000000
CONNECT_TIMEOUT = 10.0

_libc = ctypes.CDLL(None, use_errno=True)
_libc.setns.argtypes = [ctypes.c_int, ctypes.c_int]


def _socket_in(netns_path: str, family: int) -> socket.socket:
    """Thread body: enter the namespace, make a non-blocking TCP socket there."""
    fd = os.open(netns_path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        if _libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns {netns_path}: {os.strerror(err)}")
        if os.stat("/proc/thread-self/ns/net").st_ino != os.fstat(fd).st_ino:
            raise OSError(errno.EINVAL, f"setns {netns_path}: the thread is not in that namespace")
    finally:
        os.close(fd)
    sock = socket.socket(family, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    sock.setblocking(False)
    return sock


async def socket_in_namespace(netns_path: str, family: int = socket.AF_INET) -> socket.socket:
    """A TCP socket of the network namespace pinned at ``netns_path`` ("" for the host's own)."""
    if not netns_path:
        sock = socket.socket(family, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        sock.setblocking(False)
        return sock
    loop = asyncio.get_running_loop()
    result: asyncio.Future[socket.socket] = loop.create_future()

    def body() -> None:
        try:
            sock = _socket_in(netns_path, family)
        except BaseException as exc:  # handed to the loop
            loop.call_soon_threadsafe(_fail, result, exc)
        else:
            loop.call_soon_threadsafe(_deliver, result, sock)

    threading.Thread(target=body, name="netns-dial", daemon=True).start()
    return await result


def _deliver(result: asyncio.Future[socket.socket], sock: socket.socket) -> None:
    if result.cancelled():
        sock.close()
    else:
        result.set_result(sock)


def _fail(result: asyncio.Future[socket.socket], exc: BaseException) -> None:
    if not result.cancelled():
        result.set_exception(exc)


async def connect_local(netns_path: str, port: int, timeout: float = CONNECT_TIMEOUT) -> socket.socket:
    """A connected socket to ``localhost:port`` in the namespace; raises OSError with the last failure."""
    loop = asyncio.get_running_loop()
    failures: list[OSError] = []
    for family, address in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
        sock = await socket_in_namespace(netns_path, family)
        try:
            await asyncio.wait_for(loop.sock_connect(sock, (address, port)), timeout)
        except TimeoutError:
            sock.close()
            failures.append(OSError(errno.ETIMEDOUT, f"connecting to {address} port {port} timed out"))
        except OSError as exc:
            sock.close()
            log.debug("connecting to %s port %d in %s: %s", address, port, netns_path or "the host", exc)
            failures.append(exc)
        else:
            return sock
    # IPv6's failure only matters when IPv4 had no better reason (an IPv4-only pod has no ::1).
    useful = [
        f for f in failures if f.errno not in (errno.EAFNOSUPPORT, errno.EADDRNOTAVAIL, errno.ENETUNREACH)
    ]
    raise (useful or failures)[0]
