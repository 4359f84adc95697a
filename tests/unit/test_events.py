"""The event bus: fan-out in order, bounded queues, slow subscribers dropped, never blocking a publisher."""

from __future__ import annotations

import asyncio
import logging

import pytest

from crio.core.events import CONTAINER, POD, REMOVED, Event, EventBus


async def collect(subscription: object, count: int) -> list[Event]:
    found: list[Event] = []
    async for event in subscription:  # type: ignore[attr-defined]
        found.append(event)
        if len(found) == count:
            break
    return found


def test_every_subscriber_gets_every_event_in_order() -> None:
    async def scenario() -> None:
        bus = EventBus()
        first, second = bus.subscribe(), bus.subscribe()
        bus.transition(CONTAINER, "c1", "p1", "", "created")
        bus.transition(CONTAINER, "c1", "p1", "created", "running")
        bus.transition(CONTAINER, "c1", "p1", "running", "running")  # no change: not published
        bus.transition(CONTAINER, "c1", "p1", "running", "exited")
        bus.transition(POD, "p1", "p1", "ready", REMOVED)
        for subscription in (first, second):
            got = await collect(subscription, 4)
            assert [(e.kind, e.object_id, e.old_state, e.new_state) for e in got] == [
                (CONTAINER, "c1", "", "created"),
                (CONTAINER, "c1", "created", "running"),
                (CONTAINER, "c1", "running", "exited"),
                (POD, "p1", "ready", REMOVED),
            ]
            assert got[0].time_ns <= got[-1].time_ns and got[0].pod_id == "p1"
        assert bus.published == 4

    asyncio.run(scenario())


def test_a_slow_subscriber_is_dropped_and_the_publisher_never_waits(caplog: pytest.LogCaptureFixture) -> None:
    async def scenario() -> None:
        bus = EventBus()
        slow = bus.subscribe(maxsize=3)
        fast = bus.subscribe(maxsize=100)
        with caplog.at_level(logging.WARNING):
            for n in range(10):
                bus.transition(CONTAINER, f"c{n}", "p", "", "created")
        assert slow.dropped and not fast.dropped
        assert "event subscriber dropped" in caplog.text
        assert [e.object_id for e in await collect(slow, 100)] == ["c0", "c1", "c2"]  # then it ends
        assert len(await collect(fast, 10)) == 10

    asyncio.run(scenario())


def test_close_ends_a_waiting_iteration() -> None:
    async def scenario() -> None:
        bus = EventBus()
        subscription = bus.subscribe()
        reader = asyncio.ensure_future(collect(subscription, 5))
        await asyncio.sleep(0)
        bus.transition(POD, "p", "p", "", "ready")
        await asyncio.sleep(0)
        subscription.close()
        assert [e.new_state for e in await asyncio.wait_for(reader, 5)] == ["ready"]
        bus.transition(POD, "p", "p", "ready", "notready")  # no subscriber left: nothing queued
        assert subscription.pending() == 0

    asyncio.run(scenario())
