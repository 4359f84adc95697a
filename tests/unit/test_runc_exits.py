"""Exit detection without polling: inotify on exit directories and pidfds."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest

from crio.core import proc
from crio.plugins.runc import exits


def write_like_conmon(path: Path, text: str) -> None:
    """conmon (g_file_set_contents) writes a temporary file and renames it into place."""
    tmp = path.with_name(f"{path.name}.XYZ123")
    tmp.write_text(text)
    os.rename(tmp, path)


def test_read_exit_file(tmp_path: Path) -> None:
    assert exits.read_exit_file(tmp_path / "none") is None
    (tmp_path / "partial").write_text("")
    assert exits.read_exit_file(tmp_path / "partial") is None
    (tmp_path / "c1").write_text("137")
    status = exits.read_exit_file(tmp_path / "c1")
    assert status is not None
    assert status.code == 137
    assert abs(status.finished_at - time.time_ns()) < 5 * 10**9


def test_wait_exit_sees_renames_and_plain_writes(tmp_path: Path) -> None:
    async def main() -> tuple[int, int, int, list[Path]]:
        first = asyncio.ensure_future(exits.wait_exit(tmp_path / "a"))
        second = asyncio.ensure_future(exits.wait_exit(tmp_path / "b"))
        also_second = asyncio.ensure_future(exits.wait_exit(tmp_path / "b"))
        await asyncio.sleep(0.05)
        assert not first.done()
        write_like_conmon(tmp_path / "a", "7")
        (tmp_path / "unrelated").write_text("1")
        with open(tmp_path / "b", "w") as handle:  # a plain writer: created empty first
            handle.write("")
            handle.flush()
            await asyncio.sleep(0.05)
            assert not second.done()
            handle.write("143")
        results = await asyncio.wait_for(asyncio.gather(first, second, also_second), 5)
        return results[0], results[1], results[2], exits.watcher().watched()

    a, b, b2, watched = asyncio.run(main())
    assert (a, b, b2) == (7, 143, 143)
    assert watched == []


def test_wait_exit_returns_at_once_for_an_existing_file(tmp_path: Path) -> None:
    (tmp_path / "done").write_text("0\n")
    assert asyncio.run(asyncio.wait_for(exits.wait_exit(tmp_path / "done"), 2)) == 0


def test_wait_exit_cancel_unwatches_and_missing_dir_raises(tmp_path: Path) -> None:
    async def main() -> list[Path]:
        waiter = asyncio.ensure_future(exits.wait_exit(tmp_path / "x"))
        await asyncio.sleep(0.05)
        assert exits.watcher().watched() == [tmp_path]
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        with pytest.raises(FileNotFoundError):
            await exits.wait_exit(tmp_path / "missing" / "x")
        return exits.watcher().watched()

    assert asyncio.run(main()) == []


def test_removed_directory_fails_the_waiters(tmp_path: Path) -> None:
    directory = tmp_path / "exits"
    directory.mkdir()

    async def main() -> None:
        waiter = asyncio.ensure_future(exits.wait_exit(directory / "x"))
        await asyncio.sleep(0.05)
        directory.rmdir()
        with pytest.raises(FileNotFoundError):
            await asyncio.wait_for(waiter, 5)

    asyncio.run(main())


def test_wait_pid() -> None:
    async def main() -> float:
        child = proc.spawn(["sleep", "0.3"])
        started = time.monotonic()
        await asyncio.wait_for(exits.wait_pid(child.pid), 5)
        elapsed = time.monotonic() - started
        await child.exited
        await exits.wait_pid(child.pid)  # gone: returns at once
        return elapsed

    assert 0.2 < asyncio.run(main()) < 3
