"""Runs the synchronous containers/storage store off the event loop, on two separate thread pools.

Quick metadata calls (list, status, names) never queue behind bulk work (layer extraction, deletes of big
trees), so a large pull cannot slow ListImages down.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")

METADATA_WORKERS = 4
BULK_WORKERS = 3


class StoreAccess:
    """Owns the store object and the thread pools that call it."""

    def __init__(self, store: Any) -> None:
        self.store = store
        self._metadata = ThreadPoolExecutor(METADATA_WORKERS, thread_name_prefix="crio-store")
        self._bulk = ThreadPoolExecutor(BULK_WORKERS, thread_name_prefix="crio-bulk")

    async def call(self, func: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run a quick store call on the metadata pool and return its result."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._metadata, functools.partial(func, *args, **kwargs))

    async def bulk(self, func: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run a long store call (layer extraction, tree removal) on the bulk pool and return its result."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._bulk, functools.partial(func, *args, **kwargs))

    def close(self) -> None:
        """Wait for running calls and stop the pools."""
        self._metadata.shutdown(wait=True)
        self._bulk.shutdown(wait=True)
