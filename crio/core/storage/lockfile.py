"""containers/storage lock files: whole-file POSIX record locks and the 64-byte last-writer token.

A lock file (``layers.lock``, ``images.lock``, ``storage.lock``...) is shared with podman, skopeo and CRI-O:

* The lock is a classic POSIX ``fcntl(F_SETLKW)`` record lock over the whole file (never ``flock``, which
  lives in another namespace and would not exclude the Go tools). Read locks are shared, write locks are
  exclusive, between processes.
* POSIX locks belong to the *process* and are dropped when the process closes *any* descriptor of the file,
  so each lock file is opened once per process (on the first acquire) and closed on the last release; all
  token I/O goes through that one descriptor. :func:`get_lockfile` hands out one object per path.
* POSIX locks do not exclude threads of one process from each other, so an in-process readers-writer lock
  is taken first.
* The file's content is the token of the last writer: 64 bytes, u64 LE UnixNano, u64 LE per-process counter,
  u32 LE pid, 44 random bytes. A writer records a fresh token *before* writing its JSON; a reader compares
  the token with the one it saw at its last load to know whether someone else wrote since.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import itertools
import mmap
import os
import struct
import threading
import time
from collections.abc import Iterator
from pathlib import Path

TOKEN_SIZE = 64
_RETRY_SECONDS = 0.01
_RETRY_ERRNOS = (errno.EINTR, errno.EDEADLK, errno.ENOLCK, errno.EAGAIN)

_counter = itertools.count(1)
_counter_lock = threading.Lock()


def new_token() -> bytes:
    """Return a fresh last-writer token (64 bytes, the layout containers/storage writes)."""
    with _counter_lock:
        counter = next(_counter)
    head = struct.pack(
        "<QQI", time.time_ns() & 0xFFFFFFFFFFFFFFFF, counter & 0xFFFFFFFFFFFFFFFF, os.getpid() & 0xFFFFFFFF
    )
    return head + os.urandom(TOKEN_SIZE - len(head))


class RWLock:
    """A writer-preferring readers-writer lock for the threads of this process (not reentrant)."""

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._readers = 0
        self._writer = False
        self._writers_waiting = 0

    def acquire_read(self) -> None:
        """Block until no thread writes or waits to write, then hold a shared lock."""
        with self._cond:
            while self._writer or self._writers_waiting:
                self._cond.wait()
            self._readers += 1

    def release_read(self) -> None:
        """Release a shared lock."""
        with self._cond:
            self._readers -= 1
            if self._readers == 0:
                self._cond.notify_all()

    def acquire_write(self) -> None:
        """Block until no other thread holds the lock, then hold it exclusively."""
        with self._cond:
            self._writers_waiting += 1
            try:
                while self._writer or self._readers:
                    self._cond.wait()
            finally:
                self._writers_waiting -= 1
            self._writer = True

    def release_write(self) -> None:
        """Release the exclusive lock."""
        with self._cond:
            self._writer = False
            self._cond.notify_all()


class LockFile:
    """One containers/storage lock file of this process; use :func:`get_lockfile` to obtain it."""

    def __init__(self, path: Path, read_only: bool = False) -> None:
        self.path = Path(path)
        self.read_only = read_only
        self._rw = RWLock()
        self._fd_lock = threading.Lock()
        self._fd = -1
        self._holders = 0
        self._last_seen: bytes | None = None
        self._map: mmap.mmap | None = None

    # ------------------------------------------------------------------------------------ acquiring

    def _open(self) -> int:
        flags = os.O_CLOEXEC | (os.O_RDONLY if self.read_only else os.O_RDWR | os.O_CREAT)
        return os.open(self.path, flags, 0o644)

    def _posix_lock(self, kind: int) -> None:
        while True:
            try:
                fcntl.lockf(self._fd, kind)
                return
            except OSError as exc:
                if exc.errno not in _RETRY_ERRNOS:
                    raise
            time.sleep(_RETRY_SECONDS)

    def _take(self, kind: int) -> None:
        with self._fd_lock:
            if self._holders == 0:
                self._fd = self._open()
                try:
                    self._posix_lock(kind)
                except BaseException:
                    os.close(self._fd)
                    self._fd = -1
                    raise
                if self._map is None:
                    self._map_token()
            self._holders += 1

    def _drop(self) -> None:
        with self._fd_lock:
            self._holders -= 1
            if self._holders == 0:
                fd, self._fd = self._fd, -1
                try:
                    fcntl.lockf(fd, fcntl.LOCK_UN)
                finally:
                    os.close(fd)  # closing drops the POSIX lock anyway

    def lock(self) -> None:
        """Take the write lock: exclusive between threads of this process and between processes."""
        if self.read_only:
            raise PermissionError(f"lock file {self.path} is read-only: no write lock")
        self._rw.acquire_write()
        try:
            self._take(fcntl.LOCK_EX)
        except BaseException:
            self._rw.release_write()
            raise

    def unlock(self) -> None:
        """Release the write lock."""
        try:
            self._drop()
        finally:
            self._rw.release_write()

    def rlock(self) -> None:
        """Take a read lock, shared with other readers (threads and processes), exclusive of writers."""
        self._rw.acquire_read()
        try:
            self._take(fcntl.LOCK_SH)
        except BaseException:
            self._rw.release_read()
            raise

    def runlock(self) -> None:
        """Release a read lock."""
        try:
            self._drop()
        finally:
            self._rw.release_read()

    @contextlib.contextmanager
    def write(self) -> Iterator[LockFile]:
        """Hold the write lock for a ``with`` block."""
        self.lock()
        try:
            yield self
        finally:
            self.unlock()

    @contextlib.contextmanager
    def read(self) -> Iterator[LockFile]:
        """Hold a read lock for a ``with`` block."""
        self.rlock()
        try:
            yield self
        finally:
            self.runlock()

    @property
    def locked(self) -> bool:
        """Whether some thread of this process holds the lock (read or write)."""
        return self._holders > 0

    # ---------------------------------------------------------------------------------------- token

    def _require_fd(self) -> int:
        if self._fd < 0:
            raise RuntimeError(f"lock file {self.path} is not locked")
        return self._fd

    def token(self) -> bytes:
        """Return the last writer's token as stored (``b""`` for a never-written file); lock held."""
        return os.pread(self._require_fd(), TOKEN_SIZE, 0)

    def _map_token(self) -> None:
        """Map the token for :meth:`peek_token` once the file holds one (lock fd open).

        The mapping keeps a duplicate of the descriptor open for the life of the process; it is never
        closed, so it can never drop this process's POSIX locks.
        """
        try:
            if os.fstat(self._fd).st_size >= TOKEN_SIZE:
                self._map = mmap.mmap(self._fd, TOKEN_SIZE, mmap.MAP_SHARED, mmap.PROT_READ)
        except (OSError, ValueError):
            self._map = None

    def peek_token(self) -> bytes | None:
        """Read the token without a lock or a system call (None until the token has been mapped).

        For fast "has anything changed?" checks: a writer records its token *before* it writes its data,
        so an unchanged token means data cached at that token is still current.
        """
        mapped = self._map
        return None if mapped is None else mapped[:TOKEN_SIZE]

    def record_write(self) -> bytes:
        """Store a fresh token (call under the write lock, *before* writing the data it guards)."""
        if self.read_only:
            raise PermissionError(f"lock file {self.path} is read-only")
        token = new_token()
        fd = self._require_fd()
        written = os.pwrite(fd, token, 0)
        if written != TOKEN_SIZE:
            raise OSError(errno.EIO, f"short write of the token to {self.path}")
        self._last_seen = token
        if self._map is None:
            self._map_token()
        return token

    def modified_since(self, previous: bytes | None) -> tuple[bool, bytes]:
        """Compare the stored token with ``previous`` (a token this caller saw); lock held.

        Returns whether it differs (``previous`` None: always) and the current token, to remember.
        """
        current = self.token()
        return (previous is None or current != previous), current

    def modified(self) -> bool:
        """Say whether another writer wrote since this process's last ``modified()``/``record_write()``.

        Lock held. Like containers/storage's ``Modified``: the answer updates the remembered token.
        """
        changed, current = self.modified_since(self._last_seen)
        self._last_seen = current
        return changed

    def touch(self) -> bytes:
        """Take the write lock just long enough to record a fresh token (``storage.lock`` at shutdown)."""
        with self.write():
            return self.record_write()


_cache: dict[tuple[str, bool], LockFile] = {}
_cache_lock = threading.Lock()


def get_lockfile(path: Path, read_only: bool = False) -> LockFile:
    """Return this process's one :class:`LockFile` for ``path`` (created, mode 0644, on first lock)."""
    key = (os.path.abspath(path), read_only)
    with _cache_lock:
        found = _cache.get(key)
        if found is None:
            found = _cache[key] = LockFile(Path(key[0]), read_only)
        return found


def _forget_in_child() -> None:
    # A forked child owns none of the parent's POSIX locks nor its threads: start afresh.
    global _cache_lock, _counter_lock
    _cache.clear()
    _cache_lock = threading.Lock()
    _counter_lock = threading.Lock()


os.register_at_fork(after_in_child=_forget_in_child)
