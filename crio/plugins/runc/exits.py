"""Waiting for container and process exits without polling: inotify on exit directories, pidfds for pids.

conmon writes a container's exit code as decimal text to ``<exit dir>/<container id>`` when the container
exits (atomically: a temporary file renamed into place), and the file's mtime is the finish time. One
inotify instance per event loop watches the exit directories that someone waits on (``loop.add_reader``, no
thread, no timer); a waiter registers before it checks the file, so an exit that lands in between is not
missed.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from crio.plugins.runc import inotify

log = logging.getLogger(__name__)

_WATCH_MASK = inotify.IN_CLOSE_WRITE | inotify.IN_MOVED_TO


@dataclass(frozen=True)
class ExitStatus:
    """A container's recorded exit: its code and when the monitor wrote it (ns since the epoch)."""

    code: int
    finished_at: int


def read_exit_file(path: Path) -> ExitStatus | None:
    """Read an exit file; None when it does not exist (yet) or does not hold a complete number."""
    try:
        with open(path, "rb") as handle:
            text = handle.read(64)
            finished_at = os.fstat(handle.fileno()).st_mtime_ns
    except (FileNotFoundError, NotADirectoryError):
        return None
    try:
        return ExitStatus(int(text.strip()), finished_at)
    except ValueError:
        return None


@dataclass
class _Directory:
    wd: int
    waiters: dict[str, set[asyncio.Future[int]]] = field(default_factory=dict)


class ExitWatcher:
    """Resolves waiters when their exit files appear; one per event loop (see :func:`watcher`)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._fd = inotify.init()
        self._dirs: dict[Path, _Directory] = {}
        self._by_wd: dict[int, Path] = {}
        loop.add_reader(self._fd, self._on_readable)

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._fd < 0

    def watched(self) -> list[Path]:
        """The directories watched right now (for tests and debugging)."""
        return sorted(self._dirs)

    async def wait(self, exit_file: Path) -> int:
        """Wait until ``exit_file`` holds an exit code and return it (at once if it already does)."""
        exit_file = Path(exit_file)
        future: asyncio.Future[int] = self._loop.create_future()
        self._register(exit_file.parent, exit_file.name, future)
        try:
            status = read_exit_file(exit_file)
            if status is not None:
                return status.code
            return await future
        finally:
            self._unregister(exit_file.parent, exit_file.name, future)

    def close(self) -> None:
        """Stop watching; pending waiters get :class:`asyncio.CancelledError`."""
        if self._fd < 0:
            return
        if not self._loop.is_closed():
            self._loop.remove_reader(self._fd)
        os.close(self._fd)
        self._fd = -1
        for directory in self._dirs.values():
            for futures in directory.waiters.values():
                for future in futures:
                    future.cancel()
        self._dirs.clear()
        self._by_wd.clear()

    def _register(self, directory: Path, name: str, future: asyncio.Future[int]) -> None:
        entry = self._dirs.get(directory)
        if entry is None:
            wd = inotify.add_watch(self._fd, directory, _WATCH_MASK)
            entry = self._dirs[directory] = _Directory(wd)
            self._by_wd[wd] = directory
        entry.waiters.setdefault(name, set()).add(future)

    def _unregister(self, directory: Path, name: str, future: asyncio.Future[int]) -> None:
        entry = self._dirs.get(directory)
        if entry is None:
            return
        futures = entry.waiters.get(name)
        if futures is not None:
            futures.discard(future)
            if not futures:
                del entry.waiters[name]
        if not entry.waiters:
            del self._dirs[directory]
            self._by_wd.pop(entry.wd, None)
            if self._fd >= 0:
                inotify.rm_watch(self._fd, entry.wd)

    def _on_readable(self) -> None:
        try:
            events = list(inotify.read_events(self._fd))
        except OSError as exc:
            log.warning("reading inotify events failed: %s", exc)
            return
        for wd, mask, name in events:
            if mask & inotify.IN_Q_OVERFLOW:
                self._recheck_all()
            elif mask & inotify.IN_IGNORED:
                self._directory_gone(wd)
            elif wd in self._by_wd:
                self._check(self._by_wd[wd], name)

    def _check(self, directory: Path, name: str) -> None:
        entry = self._dirs.get(directory)
        if entry is None or name not in entry.waiters:
            return
        status = read_exit_file(directory / name)
        if status is None:
            return  # a partial write: wait for its close or rename
        for future in entry.waiters[name]:
            if not future.done():
                future.set_result(status.code)

    def _recheck_all(self) -> None:
        for directory, entry in list(self._dirs.items()):
            for name in list(entry.waiters):
                self._check(directory, name)

    def _directory_gone(self, wd: int) -> None:
        directory = self._by_wd.pop(wd, None)
        if directory is None:
            return
        entry = self._dirs.pop(directory, None)
        if entry is None:
            return
        for name, futures in entry.waiters.items():
            gone = FileNotFoundError(
                errno.ENOENT, "exit directory removed while waiting", str(directory / name)
            )
            for future in futures:
                if not future.done():
                    future.set_exception(gone)


_WATCHERS: dict[asyncio.AbstractEventLoop, ExitWatcher] = {}


def watcher() -> ExitWatcher:
    """The running loop's exit watcher (created on first use; those of closed loops are released)."""
    loop = asyncio.get_running_loop()
    for stale in [other for other in _WATCHERS if other.is_closed()]:
        _WATCHERS.pop(stale).close()
    current = _WATCHERS.get(loop)
    if current is None or current.closed:
        current = _WATCHERS[loop] = ExitWatcher(loop)
    return current


def close_watcher() -> None:
    """Close the running loop's exit watcher, if any (daemon shutdown)."""
    with contextlib.suppress(RuntimeError):
        current = _WATCHERS.pop(asyncio.get_running_loop(), None)
        if current is not None:
            current.close()


async def wait_exit(exit_file: Path) -> int:
    """Wait, without polling, until conmon has written ``exit_file``; return the exit code it holds."""
    return await watcher().wait(Path(exit_file))


async def wait_pid(pid: int) -> None:
    """Wait, without polling, until process ``pid`` has exited (any process: pidfd, not waitpid).

    A process that is already gone returns at once. Reaping stays with the central reaper.
    """
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()

    def readable() -> None:
        if not done.done():
            done.set_result(None)

    loop.add_reader(pidfd, readable)
    try:
        await done
    finally:
        loop.remove_reader(pidfd)
        os.close(pidfd)
