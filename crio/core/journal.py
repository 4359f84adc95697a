"""A journal of intent: what an interrupted operation had done, so that a restart can finish or undo it.

Before an operation touches the host (a storage container, a namespace, a CNI ADD, a runtime container, a
mount), :meth:`Journal.begin` writes an entry naming the operation, its object and everything a recovery
needs to undo or finish it, to ``<dir>/<object id>.json``; the first write is fsynced. A step whose
outcome the recovery cannot learn by probing the host is recorded before it is attempted with
:meth:`Intent.step` (an atomic rewrite: a daemon killed at any moment leaves either the old or the new
entry, and the page cache keeps it across a daemon crash; only the start is forced to disk). When
the operation is over, successful or cleanly undone, :meth:`Intent.end` removes the entry. On start the
daemon reads :meth:`Journal.pending` and hands every entry to the recovery of its operation.

One entry per object: an object has at most one operation in flight (the managers hold its lock). The
journal knows nothing of pods or containers; the managers decide what the steps mean.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import os
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from crio.core.storage.atomic import atomic_write

log = logging.getLogger(__name__)

SUFFIX = ".json"


@dataclass
class Entry:
    """One operation in flight: ``op`` on ``object_id``, its recovery ``data`` and its recorded steps."""

    op: str
    object_id: str
    data: dict[str, Any] = field(default_factory=dict)
    steps: list[str] = field(default_factory=list)
    started: int = 0  # ns since the epoch, when the operation began

    def done(self, step: str) -> bool:
        """Whether ``step`` was recorded (it may have been only partly done when the daemon died)."""
        return step in self.steps

    def to_json(self) -> bytes:
        """The entry's file content."""
        return json.dumps(asdict(self), sort_keys=True).encode()

    @classmethod
    def from_json(cls, data: bytes) -> Entry:
        """Parse an entry; raises ValueError for anything that is not one."""
        raw = json.loads(data)
        if not isinstance(raw, dict) or not isinstance(raw.get("op"), str) or not raw.get("object_id"):
            raise ValueError("not a journal entry")
        steps = raw.get("steps", [])
        payload = raw.get("data", {})
        started = raw.get("started", 0)
        if not isinstance(steps, list) or not isinstance(payload, dict) or not isinstance(started, int):
            raise ValueError("bad steps, data or start time")
        return cls(str(raw["op"]), str(raw["object_id"]), dict(payload), [str(s) for s in steps], started)


class Intent:
    """The handle of one journaled operation."""

    def __init__(self, journal: Journal, entry: Entry) -> None:
        self.journal = journal
        self.entry = entry

    async def step(self, name: str, **data: Any) -> None:
        """Record that step ``name`` is about to be or has been done, with more recovery data."""
        self.entry.steps.append(name)
        self.entry.data.update(data)
        await asyncio.to_thread(self.journal.write, self.entry, False)

    async def end(self) -> None:
        """The operation is over (done, or undone in process): forget it."""
        await asyncio.to_thread(self.journal.remove, self.entry.object_id)


class Journal:
    """The journal directory of one daemon (under its graph root, so it survives a reboot like the store)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def path_for(self, object_id: str) -> Path:
        """The entry file of an object."""
        return self.directory / f"{object_id}{SUFFIX}"

    async def begin(self, op: str, object_id: str, **data: Any) -> Intent:
        """Write (and fsync) the intent of ``op`` on ``object_id`` before it touches anything."""
        entry = Entry(op, object_id, dict(data), started=time.time_ns())
        await asyncio.to_thread(self.write, entry, True)
        return Intent(self, entry)

    def write(self, entry: Entry, durable: bool) -> None:
        """Store an entry atomically (synchronous: run it in a worker thread)."""
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        atomic_write(self.path_for(entry.object_id), entry.to_json(), mode=0o600, durable=durable)

    def remove(self, object_id: str) -> None:
        """Forget an object's entry (absent is fine)."""
        with contextlib.suppress(FileNotFoundError):
            self.path_for(object_id).unlink()

    def pending(self) -> list[Entry]:
        """Every entry left by operations that did not end, oldest first; unreadable files are dropped."""
        try:
            names = os.listdir(self.directory)
        except FileNotFoundError:
            return []
        found: list[Entry] = []
        for name in names:
            path = self.directory / name
            if not name.endswith(SUFFIX) or name.startswith("."):
                continue
            try:
                found.append(Entry.from_json(path.read_bytes()))
            except (OSError, ValueError) as exc:
                log.warning("journal: dropping unreadable entry %s (%s)", path, exc)
                with contextlib.suppress(OSError):
                    path.unlink()
        return sorted(found, key=lambda entry: entry.started)

    async def recover_all(
        self, describe: Mapping[str, str], purge: Callable[[Entry], Awaitable[None]]
    ) -> None:
        """Recover every pending entry whose operation ``describe`` names (op → how the log calls an
        interrupted one, e.g. "interrupted run of pod"), oldest first, with :meth:`recover`."""
        for entry in await asyncio.to_thread(self.pending):
            if entry.op in describe:
                await self.recover(entry, functools.partial(purge, entry), describe[entry.op])

    async def purge_now(
        self, op: str, object_id: str, purge: Callable[[Entry], Awaitable[None]], what: str, **data: Any
    ) -> bool:
        """Journal ``op`` for ``object_id`` and recover it at once with ``purge`` (for leftovers found at
        start-up): a failure, or a crash meanwhile, leaves the entry for the next start."""
        intent = await self.begin(op, object_id, **data)
        return await self.recover(intent.entry, functools.partial(purge, intent.entry), what)

    async def recover(self, entry: Entry, purge: Callable[[], Awaitable[None]], what: str) -> bool:
        """Run ``purge`` for an interrupted operation (``what`` names it in the log) and forget its entry;
        when the purge fails the entry is kept, so the next start tries again. Returns whether it worked."""
        try:
            await purge()
        except Exception:
            log.exception("%s %s: recovering it failed; kept for the next start", what, entry.object_id)
            return False
        await asyncio.to_thread(self.remove, entry.object_id)
        log.info("%s %s (%s) undone", what, entry.object_id, entry.data.get("name", ""))
        return True
