"""The journal of intent: entries on disk before anything happens, steps recorded, pending after a crash."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from crio.core.journal import Entry, Journal


def run(coro: object) -> object:
    return asyncio.run(coro)  # type: ignore[arg-type]


def test_begin_writes_the_intent_before_returning(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "journal")

    async def scenario() -> None:
        intent = await journal.begin("run_pod", "abc", name="k8s_POD_x", handler="runc", config={"a": 1})
        on_disk = json.loads(journal.path_for("abc").read_text())
        assert on_disk.pop("started") > 0
        assert on_disk == {
            "op": "run_pod",
            "object_id": "abc",
            "data": {"name": "k8s_POD_x", "handler": "runc", "config": {"a": 1}},
            "steps": [],
        }
        await intent.step("storage")
        await intent.step("runtime", rundir="/run/x")
        entry = Entry.from_json(journal.path_for("abc").read_bytes())
        assert entry.steps == ["storage", "runtime"] and entry.data["rundir"] == "/run/x"
        assert entry.done("storage") and not entry.done("network")
        await intent.end()
        assert not journal.path_for("abc").exists()
        await intent.end()  # idempotent

    run(scenario())
    assert journal.pending() == []
    assert oct(os.stat(tmp_path / "journal").st_mode & 0o777) == "0o700"


def test_pending_lists_what_a_killed_process_left_oldest_first(tmp_path: Path) -> None:
    """A child process begins two operations, records a step and is SIGKILLed: both entries survive."""
    directory = tmp_path / "journal"
    child = f"""
import asyncio, os, signal, sys, time
sys.path.insert(0, {str(Path(__file__).resolve().parents[2])!r})
from pathlib import Path
from crio.core.journal import Journal
async def main():
    journal = Journal(Path({str(directory)!r}))
    first = await journal.begin("create_container", "c1", pod_id="p1")
    time.sleep(0.01)
    second = await journal.begin("remove_pod", "p2", name="k8s_POD_y")
    await first.step("storage")
    await first.step("runtime", rundir="/run/c1")
    os.kill(os.getpid(), signal.SIGKILL)
asyncio.run(main())
"""
    result = subprocess.run([sys.executable, "-c", child], capture_output=True, timeout=60)
    assert result.returncode == -9, result.stderr
    pending = Journal(directory).pending()
    assert [(e.op, e.object_id) for e in pending] == [("create_container", "c1"), ("remove_pod", "p2")]
    assert pending[0].steps == ["storage", "runtime"] and pending[0].data == {
        "pod_id": "p1",
        "rundir": "/run/c1",
    }
    assert not [p for p in directory.iterdir() if p.name.startswith(".tmp")]


def test_unreadable_entries_are_dropped(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    journal = Journal(tmp_path)
    (tmp_path / "broken.json").write_text("{not json")
    (tmp_path / "wrong.json").write_text('{"op": 1}')
    (tmp_path / "ignored.txt").write_text("x")
    (tmp_path / ".tmp-x.json").write_text("partial")
    run(journal.begin("run_pod", "good"))
    assert [e.object_id for e in journal.pending()] == ["good"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [".tmp-x.json", "good.json", "ignored.txt"]
    assert "dropping unreadable entry" in caplog.text


def test_missing_directory_has_nothing_pending(tmp_path: Path) -> None:
    assert Journal(tmp_path / "absent").pending() == []


@pytest.mark.parametrize(
    "raw",
    [
        b"[]",
        b'{"op": "x"}',
        b'{"op": "x", "object_id": "a", "steps": "s"}',
        b'{"op": "x", "object_id": "a", "data": []}',
    ],
)
def test_entry_parsing_refuses_what_is_not_an_entry(raw: bytes) -> None:
    with pytest.raises(ValueError):
        Entry.from_json(raw)


def test_recover_forgets_an_entry_only_when_its_purge_worked(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    purged: list[str] = []

    async def scenario() -> None:
        await journal.begin("run_pod", "ok")
        await journal.begin("run_pod", "broken")
        for entry in journal.pending():

            async def purge(entry: Entry = entry) -> None:
                if entry.object_id == "broken":
                    raise OSError("device busy")
                purged.append(entry.object_id)

            await journal.recover(entry, purge, "interrupted run of pod")

    run(scenario())
    assert purged == ["ok"]
    assert [e.object_id for e in journal.pending()] == ["broken"]  # tried again at the next start


def test_recover_all_takes_only_the_operations_it_is_given(tmp_path: Path) -> None:
    """Each manager recovers its own operations and leaves the others' entries for them."""
    journal = Journal(tmp_path)
    purged: list[tuple[str, str]] = []

    async def purge(entry: Entry) -> None:
        if entry.object_id == "stuck":
            raise OSError("device busy")
        purged.append((entry.op, entry.object_id))

    async def scenario() -> None:
        await journal.begin("run_pod", "p1")
        await journal.begin("create_container", "c1")
        await journal.begin("remove_pod", "stuck")
        await journal.begin("remove_pod", "p2")
        await journal.recover_all({"run_pod": "interrupted run", "remove_pod": "interrupted removal"}, purge)

    run(scenario())
    assert purged == [("run_pod", "p1"), ("remove_pod", "p2")]
    assert sorted(e.object_id for e in journal.pending()) == ["c1", "stuck"]


def test_purge_now_keeps_the_entry_only_when_the_purge_fails(tmp_path: Path) -> None:
    """A leftover found at start-up is purged under a journal entry: gone when it worked, kept when not."""
    journal = Journal(tmp_path)
    seen: list[dict[str, object]] = []

    async def purge(entry: Entry) -> None:
        seen.append(dict(entry.data))
        if entry.object_id == "stuck":
            raise OSError("device busy")

    async def scenario() -> tuple[bool, bool]:
        done = await journal.purge_now("remove_pod", "gone", purge, "leftover pod", handler="")
        kept = await journal.purge_now("remove_pod", "stuck", purge, "leftover pod", handler="")
        return done, kept

    assert run(scenario()) == (True, False)
    assert seen == [{"handler": ""}, {"handler": ""}]
    assert [e.object_id for e in journal.pending()] == ["stuck"]
