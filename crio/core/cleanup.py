"""An explicit undo stack: each step of a multi-step creation registers how to undo itself."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from types import TracebackType

log = logging.getLogger(__name__)

Undo = Callable[[], Awaitable[object]]


class CleanupStack:
    """Runs the registered undo steps in reverse order when the ``async with`` block fails.

    Undo steps are shielded from cancellation, so a cancelled request still cleans up completely.
    """

    def __init__(self, what: str) -> None:
        self.what = what
        self._steps: list[tuple[str, Undo]] = []

    def push(self, description: str, undo: Undo) -> None:
        """Register ``undo`` for the step just done."""
        self._steps.append((description, undo))

    def push_sync(self, description: str, undo: Callable[[], object]) -> None:
        """Register a synchronous ``undo`` (run on the event loop; it must not block)."""

        async def run() -> None:
            undo()

        self._steps.append((description, run))

    async def __aenter__(self) -> CleanupStack:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is None:
            return
        await asyncio.shield(self._unwind(exc))

    async def _unwind(self, exc: BaseException | None) -> None:
        log.info("%s failed (%s); undoing %d step(s)", self.what, exc, len(self._steps))
        for description, undo in reversed(self._steps):
            try:
                await undo()
            except Exception:
                log.exception("%s: undoing %s failed", self.what, description)
        self._steps.clear()
