"""Child processes: output capture, timeouts, and reaping of orphans by the subreaper."""

from __future__ import annotations

import asyncio
import os

import pytest

from crio.core import proc


def test_run_captures_output_and_exit_code() -> None:
    async def main() -> proc.Completed:
        return await proc.run(["sh", "-c", "echo out; echo err >&2; exit 3"], check=False)

    result = asyncio.run(main())
    assert (result.returncode, result.stdout, result.stderr) == (3, b"out\n", b"err\n")


def test_run_feeds_stdin_and_limits_output() -> None:
    async def main() -> proc.Completed:
        return await proc.run(["sh", "-c", "cat; head -c 100000 /dev/zero"], stdin=b"abc", output_limit=10)

    result = asyncio.run(main())
    assert result.stdout == b"abc" + b"\0" * 7


def test_failure_raises_with_stderr() -> None:
    async def main() -> None:
        await proc.run(["sh", "-c", "echo boom >&2; exit 2"])

    with pytest.raises(proc.ProcessError, match="sh exited with 2: boom"):
        asyncio.run(main())
    with pytest.raises(proc.ProcessError, match="cannot execute"):
        asyncio.run(proc.run(["/nonexistent/binary"]))


def test_timeout_kills_the_process() -> None:
    async def main() -> None:
        await proc.run(["sleep", "30"], timeout=0.3)

    with pytest.raises(TimeoutError):
        asyncio.run(main())


def test_subreaper_reaps_orphans_promptly() -> None:
    """A grandchild orphaned by its parent is re-parented to us and reaped, leaving no zombie."""
    read_fd, write_fd = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - runs in the forked test process
        os.close(read_fd)

        async def main() -> None:
            assert proc.become_subreaper()
            result = await proc.run(["sh", "-c", "sleep 0.3 & echo $!"])
            orphan = int(result.stdout)
            await asyncio.sleep(0.8)
            zombie = os.path.exists(f"/proc/{orphan}")
            os.write(write_fd, f"{int(zombie)} {proc.REAPER.orphans_reaped}".encode())

        try:
            asyncio.run(main())
        finally:
            os._exit(0)
    os.close(write_fd)
    with os.fdopen(read_fd) as pipe:
        left, reaped = pipe.read().split()
    os.waitpid(child, 0)
    assert left == "0", "the orphan is still in the process table"
    assert int(reaped) >= 1
