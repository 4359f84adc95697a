"""Which processes a daemon runs and for how long, from the kernel's process events connector.

A netlink socket (NETLINK_CONNECTOR, CN_IDX_PROC) receives a fork, exec and exit event for every process on
the host with kernel timestamps (CLOCK_MONOTONIC), without slowing the traced processes down as ptrace would.
:class:`ProcTracer` follows the descendants of one pid (by fork events), names each process by its command
line at exec (``runc create``, ``bridge``, ``conmon``...) and, when it exits, records how long it lived from
fork to exit and its depth below the root (1 = a direct child of the daemon).

Needs root (CAP_NET_ADMIN). Events can be lost under a burst (the socket's buffer is enlarged); the count of
lost messages is kept in ``overruns``.
"""

from __future__ import annotations

import contextlib
import os
import select
import socket
import struct
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from types import TracebackType

NETLINK_CONNECTOR = 11
CN_IDX_PROC = 1
CN_VAL_PROC = 1
PROC_CN_MCAST_LISTEN = 1
PROC_CN_MCAST_IGNORE = 2
PROC_EVENT_FORK = 0x00000001
PROC_EVENT_EXEC = 0x00000002
PROC_EVENT_EXIT = 0x80000000
NLMSG_DONE = 3
_NLMSGHDR = struct.Struct("=IHHII")
_CN_MSG = struct.Struct("=IIIIHH")
_EVENT_HEAD = struct.Struct("=IIQ")
_FORK = struct.Struct("=IIII")
_EXEC = struct.Struct("=II")
_EXIT = struct.Struct("=IIII")
# Subcommands worth telling apart in the labels (the runtime CLI's verbs).
_VERBS = frozenset({"create", "start", "kill", "delete", "state", "run", "exec", "update", "init", "pause"})


@dataclass(frozen=True)
class Finished:
    """One traced process that exited: its label, depth below the root, and fork → exit times (ns)."""

    label: str
    depth: int
    forked_ns: int
    exec_ns: int
    exited_ns: int

    @property
    def seconds(self) -> float:
        """From fork to exit."""
        return (self.exited_ns - self.forked_ns) / 1e9


@dataclass
class _Live:
    depth: int
    forked_ns: int
    label: str = ""
    exec_ns: int = 0


def label_of(argv: list[str]) -> str:
    """``runc create`` / ``conmon`` / ``bridge``...: the program's name, plus the runtime verb if any."""
    if not argv:
        return "?"
    name = os.path.basename(argv[0])
    verb = next((a for a in argv[1:] if a in _VERBS), "")
    return f"{name} {verb}" if verb else name


def _read_argv(pid: int) -> list[str]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            return [a.decode(errors="replace") for a in handle.read().split(b"\0") if a]
    except OSError:
        return []


def _read_comm(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm") as handle:
            return handle.read().strip()
    except OSError:
        return "?"


@dataclass
class ProcTracer:
    """Trace the descendants of ``root`` while in a ``with`` block; ``finished`` lists those that exited."""

    root: int
    finished: list[Finished] = field(default_factory=list)
    overruns: int = 0
    _live: dict[int, _Live] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stop_r: int = -1
    _stop_w: int = -1
    _sock: socket.socket | None = None
    _thread: threading.Thread | None = None

    def __enter__(self) -> ProcTracer:
        sock = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, NETLINK_CONNECTOR)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
        sock.bind((0, CN_IDX_PROC))
        sock.send(self._control(PROC_CN_MCAST_LISTEN))
        self._sock = sock
        self._stop_r, self._stop_w = os.pipe()
        self._live[self.root] = _Live(0, 0, label="root")
        self._thread = threading.Thread(target=self._run, name="proc-events", daemon=True)
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        os.write(self._stop_w, b"x")
        if self._thread is not None:
            self._thread.join()
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.send(self._control(PROC_CN_MCAST_IGNORE))
            self._sock.close()
        os.close(self._stop_r)
        os.close(self._stop_w)

    def take(self) -> list[Finished]:
        """The processes that exited since the last call (and forget them)."""
        with self._lock:
            taken, self.finished = self.finished, []
        return taken

    @staticmethod
    def _control(op: int) -> bytes:
        payload = struct.pack("=I", op)
        cn = _CN_MSG.pack(CN_IDX_PROC, CN_VAL_PROC, 0, 0, len(payload), 0) + payload
        return _NLMSGHDR.pack(_NLMSGHDR.size + len(cn), NLMSG_DONE, 0, 0, os.getpid()) + cn

    def _run(self) -> None:
        assert self._sock is not None
        sock_fd = self._sock.fileno()
        while True:
            ready, _, _ = select.select([sock_fd, self._stop_r], [], [])
            if self._stop_r in ready:
                return
            try:
                data = self._sock.recv(65536)
            except OSError:  # ENOBUFS: the kernel dropped events
                self.overruns += 1
                continue
            self._parse(data)

    def _parse(self, data: bytes) -> None:
        offset = 0
        while offset + _NLMSGHDR.size <= len(data):
            length = _NLMSGHDR.unpack_from(data, offset)[0]
            if length < _NLMSGHDR.size:
                return
            body = offset + _NLMSGHDR.size + _CN_MSG.size
            if body + _EVENT_HEAD.size <= offset + length:
                what, _cpu, stamp = _EVENT_HEAD.unpack_from(data, body)
                self._event(what, stamp, data, body + _EVENT_HEAD.size)
            offset += (length + 3) & ~3

    def _event(self, what: int, stamp: int, data: bytes, at: int) -> None:
        if what == PROC_EVENT_FORK:
            _ppid, parent_tgid, child_pid, child_tgid = _FORK.unpack_from(data, at)
            if child_pid != child_tgid:  # a new thread
                return
            parent = self._live.get(parent_tgid)
            if parent is not None:
                self._live[child_tgid] = _Live(parent.depth + 1, stamp, label=parent.label + " (fork)")
        elif what == PROC_EVENT_EXEC:
            pid, _tgid = _EXEC.unpack_from(data, at)
            live = self._live.get(pid)
            if live is not None:
                argv = _read_argv(pid)
                live.label = label_of(argv) if argv else _read_comm(pid)
                live.exec_ns = stamp
        elif what == PROC_EVENT_EXIT:
            pid, tgid, _code, _sig = _EXIT.unpack_from(data, at)
            if pid != tgid or pid == self.root:
                return
            live = self._live.pop(pid, None)
            if live is not None:
                with self._lock:
                    self.finished.append(
                        Finished(live.label, live.depth, live.forked_ns, live.exec_ns, stamp)
                    )


@dataclass
class Summary:
    """Processes of one label: how many, and their summed fork → exit seconds."""

    label: str
    depth: int
    count: int = 0
    seconds: float = 0.0


def summarize(finished: Iterable[Finished], max_depth: int = 99) -> list[Summary]:
    """Per (label, depth) totals, biggest first."""
    table: dict[tuple[str, int], Summary] = {}
    for item in finished:
        if item.depth > max_depth:
            continue
        entry = table.setdefault((item.label, item.depth), Summary(item.label, item.depth))
        entry.count += 1
        entry.seconds += item.seconds
    return sorted(table.values(), key=lambda s: -s.seconds)


def busy_seconds(finished: Iterable[Finished], exclude: Iterable[str] = ()) -> float:
    """Wall time during which at least one of the processes (but those labelled as in ``exclude``: the
    long-lived monitors and containers) was alive: the union of their fork → exit spans."""
    skip = set(exclude)
    spans = sorted((f.forked_ns, f.exited_ns) for f in finished if f.label not in skip)
    total, end = 0, -1
    for start, stop in spans:
        if start > end:
            total += stop - start
            end = stop
        elif stop > end:
            total += stop - end
            end = stop
    return total / 1e9
