"""One JSON record file (``layers.json``, ``images.json``, ``containers.json``) with its lock file.

The in-memory copy is reloaded only when the lock file's last-writer token changed since this object last
loaded or saved (and, for layers, when the JSON file's mtime changed), so reads stay cheap. The caller
holds the lock file (read or write) around every call.
"""

from __future__ import annotations

import dataclasses
import os
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Generic

from crio.core.storage.atomic import atomic_write
from crio.core.storage.lockfile import LockFile, get_lockfile
from crio.core.storage.records import R, decode_records, encode_records


class RecordFile(Generic[R]):
    """The records of one JSON file, indexed by ID and by name."""

    def __init__(self, path: Path, lock_path: Path, cls: type[R], check_mtime: bool = False) -> None:
        self.path = path
        self.lock: LockFile = get_lockfile(lock_path)
        self._cls = cls
        self._check_mtime = check_mtime
        self._mem = threading.Lock()
        self._records: tuple[R, ...] = ()
        self._by_id: dict[str, R] = {}
        self._by_name: dict[str, R] = {}
        self._token: bytes | None = None
        self._mtime: int | None = None

    # ---------------------------------------------------------------------------------------- loading

    def _stat_mtime(self) -> int | None:
        try:
            return os.stat(self.path).st_mtime_ns
        except FileNotFoundError:
            return None

    def reload_if_changed(self) -> bool:
        """Re-read the file if another writer wrote since our last load or save; lock held."""
        with self._mem:
            changed, token = self.lock.modified_since(self._token)
            mtime = self._stat_mtime() if self._check_mtime else None
            if not changed and mtime == self._mtime:
                return False
            try:
                data = self.path.read_bytes()
            except FileNotFoundError:
                data = b""
            self._index(decode_records(data, self._cls, str(self.path)))
            self._token, self._mtime = token, mtime
            return True

    def _index(self, records: Iterable[R]) -> None:
        """Index ``records``; a name held by several records stays with the last one (as Go's Load does)."""
        listed = list(records)
        owner: dict[str, int] = {}
        for index, record in enumerate(listed):
            for name in getattr(record, "names", ()):
                owner[name] = index
        for index, record in enumerate(listed):
            names = getattr(record, "names", ())
            kept = tuple(n for n in names if owner[n] == index)
            if kept != names:
                listed[index] = dataclasses.replace(record, names=kept)  # type: ignore[call-arg]
        self._records = tuple(listed)
        self._by_id = {r.id: r for r in listed}
        self._by_name = {n: r for r in listed for n in getattr(r, "names", ())}

    def cached_if_current(self) -> RecordFile[R] | None:
        """``self`` when the in-memory copy is provably current, without taking the lock; else None.

        Current means: loaded at least once and the lock file still holds the token seen then (a writer
        rotates the token before it changes the file). Files that also watch their mtime never qualify.
        """
        if self._check_mtime or self._token is None:
            return None
        token = self.lock.peek_token()
        return self if token is not None and token == self._token else None

    # ---------------------------------------------------------------------------------------- reading

    @property
    def records(self) -> tuple[R, ...]:
        """All records, in file order."""
        return self._records

    def get(self, record_id: str) -> R | None:
        """The record with exactly this ID."""
        return self._by_id.get(record_id)

    def by_name(self, name: str) -> R | None:
        """The record holding ``name``."""
        return self._by_name.get(name)

    def by_prefix(self, prefix: str) -> R | None:
        """The one record whose ID starts with the hex ``prefix`` (None if none or ambiguous)."""
        if not prefix or any(c not in "0123456789abcdef" for c in prefix):
            return None
        found = [r for r in self._records if r.id.startswith(prefix)]
        return found[0] if len(found) == 1 else None

    def lookup(self, key: str) -> R | None:
        """By ID, then by name, then by unique ID prefix (containers/storage's lookup order)."""
        return self.get(key) or self.by_name(key) or self.by_prefix(key)

    # ---------------------------------------------------------------------------------------- writing

    def save(self, records: Iterable[R]) -> None:
        """Make ``records`` the file's content: fresh token first, then the atomic JSON write (write lock)."""
        listed = tuple(records)
        with self._mem:
            token = self.lock.record_write()
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            atomic_write(self.path, encode_records(listed))
            self._index(listed)
            self._token = token
            self._mtime = self._stat_mtime() if self._check_mtime else None

    def put(self, record: R) -> None:
        """Add ``record`` or replace the one with its ID, and save; write lock held."""
        if record.id in self._by_id:
            self.save(record if r.id == record.id else r for r in self._records)
        else:
            self.save((*self._records, record))

    def remove(self, record_ids: Iterable[str]) -> None:
        """Drop the records with these IDs and save; write lock held."""
        gone = set(record_ids)
        self.save(r for r in self._records if r.id not in gone)
