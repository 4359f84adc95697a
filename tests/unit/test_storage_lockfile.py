"""containers/storage lock files: tokens, modified() across processes, exclusion (processes and threads)."""

from __future__ import annotations

import multiprocessing
import os
import struct
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from crio.core.storage import lockfile
from crio.core.storage.atomic import atomic_write
from crio.core.storage.lockfile import TOKEN_SIZE, LockFile, get_lockfile

CTX = multiprocessing.get_context("spawn")  # a fresh interpreter: no inherited lock state or threads


def test_token_layout_and_rotation(tmp_path: Path) -> None:
    lock = get_lockfile(tmp_path / "layers.lock")
    with lock.write():
        first = lock.record_write()
        second = lock.record_write()
    assert len(first) == TOKEN_SIZE and first != second
    nanos, counter, pid = struct.unpack("<QQI", second[:20])
    assert pid == os.getpid() and abs(nanos - time.time_ns()) < 60 * 10**9
    assert counter == struct.unpack("<QQI", first[:20])[1] + 1
    assert (tmp_path / "layers.lock").read_bytes() == second
    assert oct((tmp_path / "layers.lock").stat().st_mode & 0o777) == "0o644"
    assert get_lockfile(tmp_path / "layers.lock") is lock


def test_peek_token_follows_writes(tmp_path: Path) -> None:
    lock = get_lockfile(tmp_path / "images.lock")
    assert lock.peek_token() is None
    with lock.write():
        token = lock.record_write()
    assert lock.peek_token() == token
    (tmp_path / "images.lock").write_bytes(b"x" * TOKEN_SIZE)  # another writer's pwrite (same inode)
    assert lock.peek_token() == b"x" * TOKEN_SIZE


def _write_token(path: str) -> None:
    lock = get_lockfile(Path(path))
    with lock.write():
        lock.record_write()


def test_modified_sees_another_process(tmp_path: Path) -> None:
    path = tmp_path / "images.lock"
    lock = get_lockfile(path)
    with lock.write():
        lock.record_write()
    with lock.read():
        assert not lock.modified()
    child = CTX.Process(target=_write_token, args=(str(path),))
    child.start()
    child.join(30)
    assert child.exitcode == 0
    with lock.read():
        assert lock.modified()
        assert not lock.modified()  # the answer updates what we remember
    with lock.write():
        lock.record_write()
    with lock.read():
        assert not lock.modified()  # our own write is not "another writer"


def _hold(path: str, kind: str, ready: Any, release: Any) -> None:
    lock = get_lockfile(Path(path))
    (lock.lock if kind == "w" else lock.rlock)()
    ready.set()
    release.wait(30)
    (lock.unlock if kind == "w" else lock.runlock)()


def _then(first: Callable[[], None], second: Callable[[], None]) -> None:
    first()
    second()


def _blocked(action: Any, timeout: float = 0.5) -> bool:
    """Whether ``action`` is still blocked after ``timeout`` seconds (it keeps running in its thread)."""
    done = threading.Event()

    def run() -> None:
        action()
        done.set()

    threading.Thread(target=run, daemon=True).start()
    return not done.wait(timeout)


def test_exclusion_between_processes(tmp_path: Path) -> None:
    path = tmp_path / "layers.lock"
    lock = get_lockfile(path)
    ready, release = CTX.Event(), CTX.Event()
    child = CTX.Process(target=_hold, args=(str(path), "w", ready, release))
    child.start()
    assert ready.wait(30)
    entered = threading.Event()
    assert _blocked(lambda: _then(lock.rlock, entered.set))  # a writer elsewhere blocks our reader
    release.set()
    assert entered.wait(10)
    lock.runlock()
    child.join(30)

    # Readers share; a reader elsewhere blocks our writer.
    ready, release = CTX.Event(), CTX.Event()
    child = CTX.Process(target=_hold, args=(str(path), "r", ready, release))
    child.start()
    assert ready.wait(30)
    with lock.read():
        pass
    got = threading.Event()
    assert _blocked(lambda: _then(lock.lock, got.set))
    release.set()
    assert got.wait(10)
    lock.unlock()
    child.join(30)


def test_exclusion_between_threads(tmp_path: Path) -> None:
    lock = LockFile(tmp_path / "containers.lock")
    lock.lock()
    assert _blocked(lambda: _then(lock.rlock, lock.runlock))
    assert _blocked(lambda: _then(lock.lock, lock.unlock))
    lock.unlock()
    time.sleep(0.2)
    lock.rlock()
    lock.rlock()  # two readers at once (two threads in real use)
    assert _blocked(lambda: _then(lock.lock, lock.unlock))
    lock.runlock()
    lock.runlock()
    time.sleep(0.2)
    assert not lock.locked


def test_process_keeps_its_lock_while_threads_come_and_go(tmp_path: Path) -> None:
    """The descriptor is shared: one thread's release must not drop another thread's POSIX lock."""
    path = tmp_path / "storage.lock"
    lock = get_lockfile(path)
    lock.rlock()
    lock.rlock()
    lock.runlock()  # one of two readers leaves: the POSIX read lock must stay
    ready, release = CTX.Event(), CTX.Event()
    child = CTX.Process(target=_hold, args=(str(path), "w", ready, release))
    child.start()
    assert not ready.wait(0.5), "the other process got the write lock while we still read"
    lock.runlock()
    assert ready.wait(10)
    release.set()
    child.join(30)


def test_atomic_write(tmp_path: Path) -> None:
    target = tmp_path / "layers.json"
    atomic_write(target, b"[]")
    atomic_write(target, b'[{"id":"x"}]')
    assert target.read_bytes() == b'[{"id":"x"}]'
    assert oct(target.stat().st_mode & 0o777) == "0o600"
    assert [p.name for p in tmp_path.iterdir()] == ["layers.json"]


def test_new_token_is_unique() -> None:
    tokens = {lockfile.new_token() for _ in range(1000)}
    assert len(tokens) == 1000
