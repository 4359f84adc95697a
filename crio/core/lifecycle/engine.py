"""The lifecycle engine: what the pod and container managers share, written once.

A :class:`Lifecycle` owns the records of one kind of object (pods or containers): the ID table with lookups by
ID or unique prefix, the name registrar (a CRI name is reserved from the moment a creation starts until the
removal ends), one lock per object, listing with filters, and every state change, which it checks against the
kind's :class:`~crio.core.lifecycle.machine.StateMachine`, persists (disk first, memory second) and publishes
on the event bus. On start it loads the records of its kind from the store.

The managers keep what differs: the host steps of each operation and their undo, and the journal entries that
make those steps crash-safe (:mod:`crio.core.journal`).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass, replace
from typing import Any, ClassVar, Generic, Protocol, Self, TypeVar

from crio.core.errors import AlreadyExists, NotFound
from crio.core.events import EventBus
from crio.core.idindex import by_id_or_prefix
from crio.core.lifecycle.machine import CREATING, NEW, REMOVED, REMOVING, StateMachine
from crio.core.storage.atomic import atomic_write
from crio.core.storeaccess import StoreAccess

log = logging.getLogger(__name__)


class CriConfig(Protocol):
    """What the engine reads of the CRI config a record was created from (a :mod:`crio.core.crirecords`
    PodSandboxConfig or ContainerConfig)."""

    @property
    def labels(self) -> Mapping[str, str]:
        """The CRI labels of the object."""


class Record(Protocol):
    """What the engine needs of a pod or container record (a dataclass persisted as one JSON file)."""

    STATE_FILE: ClassVar[str]
    id: str
    name: str
    state: str
    created_at: int

    @property
    def pod_id(self) -> str:
        """The pod the object belongs to (a pod's own ID for a pod)."""

    @property
    def config(self) -> CriConfig:
        """The CRI config of the object."""

    def to_json(self) -> bytes:
        """The record file's content."""

    @classmethod
    def from_json(cls, data: bytes) -> Self:
        """Load a record file."""


R = TypeVar("R", bound=Record)


@dataclass(frozen=True)
class Stored:
    """One storage container of this engine's kind found at start-up, with its record or why it has none."""

    id: str
    metadata: Mapping[str, Any]  # the storage container's metadata (crio's JSON)
    record: Any  # the loaded record, or None
    problem: str = ""  # why there is no record


class Lifecycle(Generic[R]):
    """The records of one kind of object, their names, locks and state transitions."""

    def __init__(
        self, machine: StateMachine, record_type: type[R], access: StoreAccess, events: EventBus
    ) -> None:
        self.machine = machine
        self.record_type = record_type
        self.access = access
        self.events = events
        self.records: dict[str, R] = {}
        self.names: dict[str, str] = {}  # reserved name → object ID (creating objects included)
        self._creating: dict[str, tuple[str, str]] = {}  # object ID → (name, pod ID) while being created
        self._locks: dict[str, asyncio.Lock] = {}
        self._writing: dict[str, asyncio.Lock] = {}  # serializes each record's check-persist-apply

    # ------------------------------------------------------------------------------------------ lookups

    def get(self, id_or_prefix: str) -> R:
        """The object with this ID or unique ID prefix; NotFound (InvalidArgument when ambiguous) otherwise.
        Objects still being created are not found."""
        return by_id_or_prefix(self.records, id_or_prefix, self.machine.noun)

    def find(self, id_or_prefix: str) -> R | None:
        """Like :meth:`get`, but None for an unknown object."""
        try:
            return self.get(id_or_prefix)
        except NotFound:
            return None

    def __iter__(self) -> Iterator[R]:
        return iter(list(self.records.values()))

    def __len__(self) -> int:
        return len(self.records)

    def __contains__(self, object_id: object) -> bool:
        return object_id in self.records

    def select(
        self,
        id_prefix: str = "",
        state: str | None = None,
        labels: Mapping[str, str] | None = None,
        where: Callable[[R], bool] | None = None,
    ) -> list[R]:
        """Objects matching an ID prefix, a state, a label selector and ``where`` (all must match), oldest
        first."""
        found = []
        for record in self.records.values():
            if id_prefix and not record.id.startswith(id_prefix):
                continue
            if state is not None and record.state != state:
                continue
            if labels and any(record.config.labels.get(k) != v for k, v in labels.items()):
                continue
            if where is not None and not where(record):
                continue
            found.append(record)
        return sorted(found, key=lambda r: r.created_at)

    def holder(self, name: str) -> str | None:
        """The ID of the object that holds ``name`` (being created, existing or being removed)."""
        return self.names.get(name)

    def lock(self, object_id: str) -> asyncio.Lock:
        """The object's lock (operations that change one object hold it)."""
        return self._locks.setdefault(object_id, asyncio.Lock())

    # ----------------------------------------------------------------------------------------- creation

    def reserve(self, name: str, object_id: str, pod_id: str = "") -> None:
        """Start creating ``object_id`` (of pod ``pod_id``; a pod's own ID when empty) under ``name``:
        reserve the name (AlreadyExists if taken)."""
        holder = self.names.get(name)
        if holder is not None:
            raise AlreadyExists(
                f"{self.machine.noun} name {name} is reserved by {self.machine.noun} {holder}"
            )
        self.machine.check(object_id, NEW, CREATING)
        self.names[name] = object_id
        self._creating[object_id] = (name, pod_id or object_id)
        self._publish(object_id, pod_id or object_id, NEW, CREATING)

    async def created(self, record: R) -> None:
        """A creation succeeded: persist ``record`` (in its first durable state), then make it visible."""
        self.machine.check(record.id, CREATING, record.state)
        await self.persist(record)
        self.records[record.id] = record
        self._creating.pop(record.id, None)
        self._publish(record.id, record.pod_id, CREATING, record.state)

    def abandon(self, object_id: str) -> None:
        """A creation failed and was undone: release its name."""
        name, pod_id = self._creating.pop(object_id, ("", object_id))
        if name and self.names.get(name) == object_id:
            del self.names[name]
        self._publish(object_id, pod_id, CREATING, REMOVED)

    def creating(self) -> dict[str, str]:
        """The objects being created (ID → name)."""
        return {object_id: name for object_id, (name, _pod) in self._creating.items()}

    # ------------------------------------------------------------------------------------- transitions

    async def commit(self, record: R, only_from: Collection[str] | None = None, **changes: Any) -> bool:
        """Change ``record``: check the state transition, persist the changed record when its state is a
        durable one, then apply the changes in memory and publish the transition.

        Changes of one record are serialized: with ``only_from``, the change is made only if the record is
        still in one of those states once it is its turn (False otherwise) — two paths noticing the same
        exit, or the same dead infra container, record it once."""
        async with self._writing.setdefault(record.id, asyncio.Lock()):
            old = record.state
            if only_from is not None and old not in only_from:
                return False
            new = str(changes.get("state", old))
            self.machine.check(record.id, old, new)
            if self.machine.is_durable(new):
                await self.persist(replace(record, **changes))  # type: ignore[type-var]
            for key, value in changes.items():
                setattr(record, key, value)
            self._publish(record.id, record.pod_id, old, new)
        return True

    async def removing(self, record: R) -> None:
        """A removal starts: the record stays listed, no new work is accepted for it. Not persisted: the
        removal's journal entry is what a restart finds."""
        async with self._writing.setdefault(record.id, asyncio.Lock()):
            old = record.state
            self.machine.check(record.id, old, REMOVING)
            record.state = REMOVING
            self._publish(record.id, record.pod_id, old, REMOVING)

    def removed(self, record: R) -> None:
        """A removal finished: forget the record, its name and its lock."""
        self.machine.check(record.id, record.state, REMOVED)
        self.records.pop(record.id, None)
        if self.names.get(record.name) == record.id:
            del self.names[record.name]
        self._locks.pop(record.id, None)
        self._writing.pop(record.id, None)
        self._publish(record.id, record.pod_id, record.state, REMOVED)

    def _publish(self, object_id: str, pod_id: str, old: str, new: str) -> None:
        self.events.transition(self.machine.kind, object_id, pod_id, old, new)

    # ---------------------------------------------------------------------------------- persistence

    async def persist(self, record: R) -> None:
        """Write the record file atomically and durably into the object's ContainerDirectory."""
        directory = await self.access.call(self.access.store.container_directory, record.id)
        path = self.record_type.state_path(directory)  # type: ignore[attr-defined]
        await asyncio.to_thread(atomic_write, path, record.to_json())

    async def stored(self, wanted: Callable[[str, Mapping[str, Any]], bool]) -> list[Stored]:
        """Every storage container for which ``wanted(id, metadata)`` holds, with its record loaded (or why
        it could not be). Storage containers whose metadata is not crio's JSON are skipped (podman's)."""
        found = []
        for container in await self.access.call(self.access.store.containers):
            try:
                metadata = json.loads(container.metadata or "{}")
            except ValueError:
                continue
            if not isinstance(metadata, dict) or not wanted(container.id, metadata):
                continue
            directory = await self.access.call(self.access.store.container_directory, container.id)
            path = self.record_type.state_path(directory)  # type: ignore[attr-defined]
            try:
                record = self.record_type.from_json(await asyncio.to_thread(path.read_bytes))
            except (OSError, ValueError, TypeError) as exc:
                found.append(Stored(container.id, metadata, None, str(exc)))
                continue
            found.append(Stored(container.id, metadata, record))
        return found

    def adopt(self, record: R) -> None:
        """Take a record loaded at start-up into the table (no transition: it is where it was)."""
        self.records[record.id] = record
        self.names[record.name] = record.id
