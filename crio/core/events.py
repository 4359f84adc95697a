"""The in-process event bus: every pod and container state transition, published from one place.

The lifecycle managers publish an :class:`Event` after each transition is on disk (created, running, exited,
ready, notready, removed). Subscribers (GetContainerEvents, metrics and NRI later; logging and tests now)
each get a bounded queue: publishing never waits, and a subscriber that falls ``maxsize`` events behind is
dropped with one log line rather than slowing the lifecycle. Events of one object reach every subscriber in
the order they were published.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

POD = "pod"
CONTAINER = "container"
REMOVED = "removed"
DEFAULT_QUEUE = 1024


@dataclass(frozen=True)
class Event:
    """One transition: ``kind`` (pod or container) ``object_id`` went from ``old_state`` to ``new_state``."""

    kind: str
    object_id: str
    pod_id: str
    old_state: str  # "" for a creation
    new_state: str  # REMOVED for a removal
    time_ns: int = field(default_factory=time.time_ns)


class Subscription:
    """A subscriber's bounded queue; iterate it to receive events, :meth:`close` to leave."""

    def __init__(self, bus: EventBus, maxsize: int) -> None:
        self._bus = bus
        self._queue: asyncio.Queue[Event | None] = asyncio.Queue(maxsize)
        self.dropped = False  # fell too far behind
        self.closed = False  # receives nothing more; iteration ends once the queue is drained

    def _offer(self, event: Event) -> bool:
        """Queue ``event``; False when the subscriber is too far behind (it is then closed)."""
        try:
            self._queue.put_nowait(event)
            return True
        except asyncio.QueueFull:
            self.dropped = True
            self._end()
            return False

    def close(self) -> None:
        """Stop receiving; a pending iteration ends after the events already queued."""
        self._bus.unsubscribe(self)
        self._end()

    def _end(self) -> None:
        self.closed = True
        # Wakes a reader waiting on an empty queue; a full queue means the reader is busy and will see
        # ``closed`` once it has drained it.
        with contextlib.suppress(asyncio.QueueFull):
            self._queue.put_nowait(None)

    def pending(self) -> int:
        """How many events wait in the queue."""
        return self._queue.qsize()

    async def __aiter__(self) -> AsyncIterator[Event]:
        while not (self.closed and self._queue.empty()):
            event = await self._queue.get()
            if event is None:
                return
            yield event


class EventBus:
    """Fan-out of lifecycle events to any number of subscribers (used from the event loop's thread)."""

    def __init__(self) -> None:
        self._subscribers: list[Subscription] = []
        self.published = 0

    def subscribe(self, maxsize: int = DEFAULT_QUEUE) -> Subscription:
        """A new subscriber receiving every event published from now on."""
        subscription = Subscription(self, maxsize)
        self._subscribers.append(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        """Remove a subscriber (absent is fine)."""
        if subscription in self._subscribers:
            self._subscribers.remove(subscription)

    def publish(self, event: Event) -> None:
        """Hand ``event`` to every subscriber without waiting; drop the ones too far behind."""
        self.published += 1
        log.debug(
            "event: %s %s %s -> %s", event.kind, event.object_id, event.old_state or "(new)", event.new_state
        )
        for subscription in list(self._subscribers):
            if not subscription._offer(event):
                self.unsubscribe(subscription)
                log.warning("event subscriber dropped: it fell %d events behind", subscription.pending())

    def transition(self, kind: str, object_id: str, pod_id: str, old_state: str, new_state: str) -> None:
        """Publish a transition unless the state did not change."""
        if old_state != new_state:
            self.publish(Event(kind, object_id, pod_id, old_state, new_state))
