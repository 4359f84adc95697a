"""Layer extraction in a child process: results, errors mapped back to their class, cancellation."""

from __future__ import annotations

import asyncio
import gzip
import io
import tarfile
import threading
from pathlib import Path

import pytest

from crio.core import proc
from crio.core.errors import DeadlineExceeded, InvalidArgument
from crio.core.storage import diffworker
from crio.core.storage.layerdiff import DiffStats


def layer(entries: list[tuple[str, bytes]]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, data in entries:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return gzip.compress(buffer.getvalue(), compresslevel=1)


@pytest.fixture(autouse=True)
def every_blob_in_a_child(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(diffworker, "IN_PROCESS_BELOW", 0)


def extract(tmp_path: Path, blob: bytes, cancel: threading.Event | None = None) -> DiffStats:
    """Run the extractor from a worker thread while the main thread runs the loop, as in the daemon."""
    (tmp_path / "blob").write_bytes(blob)
    target = tmp_path / "target"
    target.mkdir(exist_ok=True)

    async def main() -> DiffStats:
        loop = asyncio.get_running_loop()
        proc.REAPER.install(loop)
        apply = diffworker.in_subprocess(loop)

        def work() -> DiffStats:
            with open(tmp_path / "blob", "rb") as source, open(tmp_path / "tar-split.gz", "wb") as split:
                stats: DiffStats = apply(source, target, "overlay", split, cancel)
                return stats

        try:
            return await loop.run_in_executor(None, work)
        finally:
            proc.REAPER.uninstall()

    return asyncio.run(main())


def test_extracts_and_reports_stats(tmp_path: Path) -> None:
    stats = extract(tmp_path, layer([("etc/hello", b"hi\n"), ("bin/tool", b"x" * 1000)]))
    assert (tmp_path / "target" / "etc" / "hello").read_text() == "hi\n"
    assert stats.diff_digest.startswith("sha256:") and stats.compression == 2
    assert stats.uids == (0,) and (tmp_path / "tar-split.gz").stat().st_size > 0


def test_refused_entry_is_reported_with_its_error_class(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument, match="escape-by-diffworker"):
        extract(tmp_path, layer([("../../escape-by-diffworker", b"x")]))
    assert not (tmp_path / "escape-by-diffworker").exists()


def test_cancel_kills_the_child(tmp_path: Path) -> None:
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(DeadlineExceeded):
        extract(tmp_path, layer([(f"f{i}", b"y" * 4096) for i in range(2000)]), cancel)
