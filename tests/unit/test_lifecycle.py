"""The lifecycle engine and its state machines (crio.core.lifecycle), on a real vfs store in a temporary
directory: no root, no daemon."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pluggy
import pytest

import crio.plugins.storage_vfs
from crio.core import hookspecs
from crio.core.containers.model import Container
from crio.core.crirecords import ContainerConfig, ContainerMetadata
from crio.core.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
from crio.core.events import EventBus, Subscription
from crio.core.lifecycle import machine
from crio.core.lifecycle.engine import Lifecycle
from crio.core.lifecycle.machine import (
    CREATED,
    CREATING,
    EXITED,
    NEW,
    NOTREADY,
    READY,
    REMOVED,
    REMOVING,
    RUNNING,
    IllegalTransition,
)
from crio.core.storage.store import Store
from crio.core.storeaccess import StoreAccess

IMAGE = "a" * 64


# ------------------------------------------------------------------------------------------ machines


@pytest.mark.parametrize("kind", [machine.POD, machine.CONTAINER], ids=lambda m: m.kind)
def test_the_documented_tables_are_the_machines(kind: machine.StateMachine) -> None:
    """The module docstring shows each transition table exactly as the code has it."""
    doc = machine.__doc__ or ""
    rendered = "\n".join("    " + row for row in machine.render(kind))
    assert rendered in doc


@pytest.mark.parametrize("kind", [machine.POD, machine.CONTAINER], ids=lambda m: m.kind)
def test_every_state_is_reachable_and_only_removed_is_final(kind: machine.StateMachine) -> None:
    assert kind.reachable() == frozenset(kind.states)
    assert kind.terminal() == {REMOVED}
    assert kind.states[0] == NEW and kind.states[-1] == REMOVED


@pytest.mark.parametrize("kind", [machine.POD, machine.CONTAINER], ids=lambda m: m.kind)
def test_in_between_states_are_never_written(kind: machine.StateMachine) -> None:
    """Creating and removing live in the journal, not in the record file; every other state does."""
    assert not kind.durable & {NEW, CREATING, REMOVING, REMOVED}
    assert kind.durable == set(kind.states) - {NEW, CREATING, REMOVING, REMOVED}
    assert kind.hidden == {CREATING}


@pytest.mark.parametrize(
    ("kind", "old", "new", "allowed"),
    [
        (machine.POD, NEW, CREATING, True),
        (machine.POD, CREATING, READY, True),
        (machine.POD, CREATING, REMOVED, True),
        (machine.POD, READY, NOTREADY, True),
        (machine.POD, NOTREADY, READY, False),  # a stopped pod is never ready again
        (machine.POD, READY, REMOVING, False),  # a removal stops the pod first
        (machine.POD, NOTREADY, REMOVING, True),
        (machine.POD, REMOVING, REMOVED, True),
        (machine.POD, REMOVING, NOTREADY, False),
        (machine.POD, NEW, READY, False),
        (machine.CONTAINER, CREATING, CREATED, True),
        (machine.CONTAINER, CREATED, RUNNING, True),
        (machine.CONTAINER, CREATED, EXITED, True),  # stopped before it ever ran
        (machine.CONTAINER, RUNNING, EXITED, True),
        (machine.CONTAINER, RUNNING, REMOVING, True),
        (machine.CONTAINER, EXITED, RUNNING, False),  # CRI containers never restart
        (machine.CONTAINER, EXITED, CREATED, False),
        (machine.CONTAINER, REMOVING, EXITED, False),  # a removal records no exit
        (machine.CONTAINER, CREATED, REMOVED, False),  # only through removing
        (machine.CONTAINER, EXITED, EXITED, True),  # staying is not a transition
    ],
)
def test_transitions(kind: machine.StateMachine, old: str, new: str, allowed: bool) -> None:
    assert kind.allows(old, new) is allowed
    if allowed:
        kind.check("x", old, new)
    else:
        with pytest.raises(IllegalTransition, match=f"{kind.noun} x is .*cannot become {new}"):
            kind.check("x", old, new)


def test_an_illegal_transition_is_a_failed_precondition() -> None:
    """A client asking for the impossible (start an exited container) gets FAILED_PRECONDITION."""
    assert issubclass(IllegalTransition, FailedPrecondition)


# -------------------------------------------------------------------------------------------- engine


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    pm.register(crio.plugins.storage_vfs, name="storage_vfs")
    opened = Store(tmp_path / "graph", tmp_path / "run", "vfs", (), pm.hook)
    opened.open()
    opened.create_image(IMAGE, None, ["localhost/empty:latest"], None, [])
    yield opened


class Bench:
    """A container lifecycle engine on ``store`` with an event subscription."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.bus = EventBus()
        self.events: Subscription = self.bus.subscribe()
        self.engine: Lifecycle[Container] = Lifecycle(
            machine.CONTAINER, Container, StoreAccess(store), self.bus
        )

    def storage(self, object_id: str, pod_id: str = "p" * 64) -> None:
        meta = json.dumps({"pod-id": pod_id, "name": f"k8s_{object_id[:4]}"})
        self.store.create_container(object_id, [f"k8s_{object_id[:4]}"], IMAGE, meta)

    def published(self) -> list[str]:
        seen = []
        while self.events.pending():
            event = self.events._queue.get_nowait()
            assert event is not None
            seen.append(f"{event.object_id[:4]} {event.old_state or '(new)'} -> {event.new_state}")
        return seen

    async def created(self, object_id: str, **fields: Any) -> Container:
        """Create a container record the way a manager does: reserve, storage, then created()."""
        self.engine.reserve(f"k8s_{object_id[:4]}", object_id)
        self.storage(object_id)
        record = container(object_id, **fields)
        await self.engine.created(record)
        return record

    def record_file(self, object_id: str) -> dict[str, Any]:
        path = Container.state_path(self.store.container_directory(object_id))
        data: dict[str, Any] = json.loads(path.read_bytes())
        return data


def container(object_id: str, created_at: int = 1, **fields: Any) -> Container:
    labels = fields.pop("labels", {})
    return Container(
        id=object_id,
        name=f"k8s_{object_id[:4]}",
        pod_id=fields.pop("pod_id", "p" * 64),
        config=ContainerConfig(metadata=ContainerMetadata(name=object_id[:4]), labels=labels),
        image="busybox",
        image_id=IMAGE,
        image_name="busybox",
        runtime_handler="runc",
        log_path="",
        created_at=created_at,
        **fields,
    )


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_a_creation_reserves_the_name_and_shows_the_object_once_on_disk(store: Store) -> None:
    async def scenario() -> None:
        bench = Bench(store)
        engine = bench.engine
        cid = "c" * 64
        engine.reserve("k8s_cccc", cid)
        with pytest.raises(AlreadyExists, match=f"container name k8s_cccc is reserved by container {cid}"):
            engine.reserve("k8s_cccc", "d" * 64)
        assert engine.find(cid) is None and engine.select() == []  # creating: not visible
        assert engine.creating() == {cid: "k8s_cccc"}
        bench.storage(cid)
        await engine.created(container(cid))
        assert engine.get(cid[:6]).state == CREATED
        assert bench.record_file(cid)["state"] == CREATED
        assert engine.creating() == {}
        assert bench.published() == ["cccc (new) -> creating", "cccc creating -> created"]

    run(scenario())


def test_an_abandoned_creation_frees_its_name(store: Store) -> None:
    async def scenario() -> None:
        bench = Bench(store)
        bench.engine.reserve("k8s_cccc", "c" * 64)
        bench.engine.abandon("c" * 64)
        assert bench.engine.holder("k8s_cccc") is None
        bench.engine.reserve("k8s_cccc", "d" * 64)  # free again
        assert bench.published() == [
            "cccc (new) -> creating",
            "cccc creating -> removed",
            "dddd (new) -> creating",
        ]

    run(scenario())


def test_commit_writes_the_disk_before_memory(store: Store) -> None:
    async def scenario() -> None:
        bench = Bench(store)
        cid = "c" * 64
        record = await bench.created(cid)
        await bench.engine.commit(record, state=RUNNING, started_at=5)
        assert bench.record_file(cid)["state"] == RUNNING and bench.record_file(cid)["started_at"] == 5
        bench.published()
        # The record's storage vanishes: the write fails, memory keeps the old state, nothing is published.
        store.delete_container(cid)
        with pytest.raises(NotFound):
            await bench.engine.commit(record, state=EXITED, exit_code=3)
        assert record.state == RUNNING and record.exit_code == 0
        assert bench.published() == []

    run(scenario())


def test_an_illegal_commit_changes_nothing(store: Store) -> None:
    async def scenario() -> None:
        bench = Bench(store)
        cid = "c" * 64
        record = await bench.created(cid)
        await bench.engine.commit(record, state=EXITED, exit_code=1)
        with pytest.raises(IllegalTransition):
            await bench.engine.commit(record, state=RUNNING)
        assert record.state == EXITED and bench.record_file(cid)["state"] == EXITED

    run(scenario())


def test_a_removal_keeps_the_record_listed_until_it_is_done(store: Store) -> None:
    async def scenario() -> None:
        bench = Bench(store)
        cid = "c" * 64
        record = await bench.created(cid)
        lock = bench.engine.lock(cid)
        async with lock:
            await bench.engine.removing(record)
            assert bench.engine.get(cid).state == REMOVING
            assert bench.record_file(cid)["state"] == CREATED  # the journal, not the file, says removing
            with pytest.raises(IllegalTransition):
                await bench.engine.commit(record, state=EXITED)
            bench.engine.removed(record)
        assert bench.engine.find(cid) is None and bench.engine.holder("k8s_cccc") is None
        assert bench.engine.lock(cid) is not lock
        assert bench.published()[-2:] == ["cccc created -> removing", "cccc removing -> removed"]

    run(scenario())


def test_select_filters_and_orders(store: Store) -> None:
    async def scenario() -> None:
        bench = Bench(store)
        for n, (letter, labels) in enumerate([("b", {"app": "x"}), ("a", {"app": "y"}), ("c", {"app": "x"})]):
            await bench.created(letter * 64, created_at=10 - n, labels=labels)
        engine = bench.engine
        assert [r.id[0] for r in engine.select()] == ["c", "a", "b"]  # oldest first
        assert [r.id[0] for r in engine.select(labels={"app": "x"})] == ["c", "b"]
        assert [r.id[0] for r in engine.select(id_prefix="aa")] == ["a"]
        assert engine.select(state=RUNNING) == []
        assert [r.id[0] for r in engine.select(where=lambda r: r.created_at == 10)] == ["b"]
        with pytest.raises(InvalidArgument, match="container ID is empty"):
            engine.get("")
        with pytest.raises(NotFound, match="container zz not found"):
            engine.get("zz")

    run(scenario())


def test_stored_loads_records_and_reports_unusable_ones(store: Store) -> None:
    async def scenario() -> None:
        bench = Bench(store)
        good, bad = "c" * 64, "d" * 64
        for cid in (good, bad):
            await bench.created(cid)
        Container.state_path(store.container_directory(bad)).write_text("{not json")
        store.create_container("e" * 64, ["podman-thing"], IMAGE, "not crio's json")
        fresh = Bench(store).engine
        found = {s.id: s for s in await fresh.stored(lambda _id, meta: "pod-id" in meta)}
        assert set(found) == {good, bad}
        assert found[good].record is not None and found[good].record.state == CREATED
        assert found[bad].record is None and found[bad].problem
        fresh.adopt(found[good].record)
        assert fresh.get(good).name == "k8s_cccc" and fresh.holder("k8s_cccc") == good

    run(scenario())


def test_racing_commits_record_one_exit(store: Store) -> None:
    """The exit watcher and a status call notice the same exit at once: one is recorded, one published."""

    async def scenario() -> None:
        bench = Bench(store)
        record = await bench.created("c" * 64)
        await bench.engine.commit(record, state=RUNNING)
        bench.published()
        results = await asyncio.gather(
            *(
                bench.engine.commit(record, only_from=(CREATED, RUNNING), state=EXITED, exit_code=code)
                for code in (1, 2, 3)
            )
        )
        assert results == [True, False, False]
        assert record.exit_code == 1 and bench.record_file(record.id)["exit_code"] == 1
        assert bench.published() == ["cccc running -> exited"]
        # Being removed: an exit noticed now is not recorded (the removal kills the container).
        await bench.engine.removing(record)
        assert not await bench.engine.commit(record, only_from=(CREATED, RUNNING), state=EXITED)

    run(scenario())


def test_events_of_a_creation_name_the_pod(store: Store) -> None:
    """Creating and abandoned-creation events carry the container's pod, as every later event does."""

    async def scenario() -> None:
        bench = Bench(store)
        bench.engine.reserve("k8s_cccc", "c" * 64, "p" * 64)
        bench.engine.abandon("c" * 64)
        events = []
        while bench.events.pending():
            events.append(bench.events._queue.get_nowait())
        assert [(e.new_state, e.pod_id) for e in events if e is not None] == [
            (CREATING, "p" * 64),
            (REMOVED, "p" * 64),
        ]

    run(scenario())
