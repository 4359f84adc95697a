"""Daemon lifecycle: serve the CRI on the unix socket, reload on SIGHUP, stop gracefully on SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from grpc import aio

import crio
from crio.core import logs, proc
from crio.core.config import Config, ConfigError, effective_notices
from crio.core.containers.manager import ContainerManager
from crio.core.errors import InvalidArgument
from crio.core.events import EventBus
from crio.core.images import imageconfig
from crio.core.images.imagetrust import ImageTrust
from crio.core.images.pause import ensure_pause_image
from crio.core.images.service import ImageService
from crio.core.journal import Journal
from crio.core.plugins import PluginManager
from crio.core.runtime_calls import RuntimeCalls
from crio.core.runtime_info import RuntimeInfo
from crio.core.sandbox.manager import SandboxManager
from crio.core.server import socket as crisocket
from crio.core.server.containers import ContainerRPCs
from crio.core.server.images import ImageRPCs
from crio.core.server.pods import PodRPCs
from crio.core.server.runtime_info import RuntimeInfoRPCs
from crio.core.server.services import generic_handlers, implemented_rpcs
from crio.core.server.stats import StatsRPCs
from crio.core.server.streaming import StreamingRPCs
from crio.core.stats.service import StatsService
from crio.core.storage import diffworker
from crio.core.storage.store import Store
from crio.core.storage_setup import choose_driver
from crio.core.storeaccess import StoreAccess
from crio.core.streaming.service import StreamingService, check_config
from crio.core.sweep.sweeper import sweep

log = logging.getLogger(__name__)

# Seconds in-flight RPCs get to finish after SIGTERM/SIGINT before they are cancelled.
GRACE_PERIOD = 3.0
# Seconds a thread may hold the GIL before another may run (Python's default is 0.005).
GIL_SWITCH_INTERVAL = 0.001
# Seconds each plugin's shutdown hook may take.
PLUGIN_SHUTDOWN_TIMEOUT = 1.0
# The journal of intent of pod and container operations, under the graph root (crio.core.journal).
JOURNAL_DIRECTORY = "crio-journal"


class Daemon:
    """One crio daemon process: owns the gRPC server, the plugins and the signal handling."""

    def __init__(
        self, config: Config, plugins: PluginManager, reload: Callable[[], Config] | None = None
    ) -> None:
        self.config = config
        self.plugins = plugins
        self.reload_config = reload
        self.info = RuntimeInfo(config, plugins)
        self.previous_shutdown_clean = False
        self._stop = asyncio.Event()
        self._server: aio.Server | None = None
        self.access: StoreAccess | None = None
        self.images: ImageService | None = None
        self.pods: SandboxManager | None = None
        self.containers: ContainerManager | None = None
        self.streaming: StreamingService | None = None
        self.stats: StatsService | None = None
        self.events = EventBus()  # every pod and container transition (crio.core.events)
        self._background: set[asyncio.Task[object]] = set()

    def families(self) -> list[object]:
        """The RPC family objects the gRPC server serves."""
        assert self.images is not None and self.pods is not None and self.containers is not None
        assert self.streaming is not None and self.stats is not None
        return [
            RuntimeInfoRPCs(self.info),
            ImageRPCs(self.images),
            PodRPCs(self.pods),
            ContainerRPCs(self.containers),
            StreamingRPCs(self.streaming),
            StatsRPCs(self.containers, self.pods, self.stats),
        ]

    async def open_storage(self) -> None:
        """Open the containers/storage store with the chosen driver and make sure the pause image exists."""
        driver = choose_driver(self.config, self.plugins.hook)
        store = Store(
            Path(str(self.config.get("crio.root"))),
            Path(str(self.config.get("crio.runroot"))),
            driver,
            list(self.config.get("crio.storage_option")),
            self.plugins.hook,
        )
        store.apply_diff = diffworker.in_subprocess(asyncio.get_running_loop())
        await asyncio.to_thread(store.open)
        self.info.storage = (driver, str(store.graphroot))
        self.access = StoreAccess(store)
        self.images = ImageService(self.config, self.access, self.plugins)
        log.info("storage: driver %s, graph root %s", driver, store.graphroot)
        await ensure_pause_image(self.images, str(self.config.get("crio.image.pause_image")))
        runtime = RuntimeCalls(self.config, self.plugins)
        journal = Journal(store.graphroot / JOURNAL_DIRECTORY)
        self.pods = SandboxManager(
            self.config, self.access, self.plugins, self.images, runtime, journal, self.events
        )
        self.containers = ContainerManager(
            self.config, self.access, self.plugins, self.images, self.pods, runtime, journal, self.events
        )
        self.pods.members = self.containers
        self.streaming = StreamingService(self.config, self.containers, self.pods, runtime)
        pods, containers = self.pods, self.containers
        self.stats = StatsService(
            float(self.config.get("crio.stats.stats_collection_period")),
            lambda: containers.containers,
            lambda: pods.sandboxes,
            self.events,
        )
        await self.pods.restore()
        await self.containers.restore()
        # What no record or journal entry owns goes before the daemon serves (no request can race it).
        await sweep(
            self.config,
            self.access,
            runtime,
            journal,
            set(self.pods.sandboxes),
            set(self.containers.containers),
        )

    async def run(self) -> int:
        """Serve until SIGTERM/SIGINT; return the process exit code."""
        loop = asyncio.get_running_loop()
        # Layer extraction keeps worker threads busy in Python; a shorter GIL switch interval keeps the
        # event loop (and so every quick RPC) responsive meanwhile.
        sys.setswitchinterval(GIL_SWITCH_INTERVAL)
        listen = self.config.listen
        try:
            check_config(self.config)
            image_warnings = await asyncio.to_thread(
                imageconfig.validate, self.config, ImageTrust(self.config)
            )
        except InvalidArgument as exc:
            log.error("invalid configuration: %s", exc)
            return 1
        for warning in image_warnings:
            log.warning("%s", warning)
        crisocket.prepare(listen)
        proc.become_subreaper()
        proc.REAPER.install(loop)
        self.previous_shutdown_clean = self._consume_clean_shutdown_marker()
        for notice in effective_notices(self.config):
            log.warning("%s", notice)
        await self.open_storage()
        assert self.streaming is not None and self.stats is not None
        await self.streaming.start()
        self.stats.start()
        server = aio.server(
            options=[
                ("grpc.max_send_message_length", int(self.config.get("crio.api.grpc_max_send_msg_size"))),
                ("grpc.max_receive_message_length", int(self.config.get("crio.api.grpc_max_recv_msg_size"))),
            ]
        )
        families = self.families()
        server.add_generic_rpc_handlers(generic_handlers(families))
        with crisocket.socket_umask():
            server.add_insecure_port(f"unix:{listen}")
            await server.start()
        crisocket.finish(listen)
        self._server = server
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self._on_stop_signal, signum)
        loop.add_signal_handler(signal.SIGHUP, self._on_reload_signal)
        self._write_version_files()
        log.info(
            "crio %s serving CRI v1 on %s (implemented: %s)",
            crio.__version__,
            listen,
            ", ".join(implemented_rpcs(families)),
        )
        await self._stop.wait()
        await self.shutdown()
        return 0

    def request_stop(self) -> None:
        """Ask the daemon to stop gracefully (what SIGTERM does)."""
        self._stop.set()

    def _on_stop_signal(self, signum: int) -> None:
        log.info("received %s: stopping gracefully", signal.Signals(signum).name)
        self._stop.set()

    def _on_reload_signal(self) -> None:
        log.info("received SIGHUP: reloading configuration")
        self.reload()

    def reload(self) -> None:
        """Re-read the configuration and apply its reloadable keys; keep the old one if it is invalid."""
        if self.reload_config is None:
            return
        try:
            new = self.reload_config()
        except ConfigError as exc:
            log.error("configuration reload failed, keeping the running configuration: %s", exc)
            return
        changed, restart = self.config.reloadable_changes(new)
        for dotted, value in changed.items():
            table, _, name = dotted.rpartition(".")
            self.config.values[table][name] = value
            self.config.sources[dotted] = new.source(dotted)
            log.info("reloaded %s = %r", dotted, value)
        if self.images is not None:  # files re-read off the event loop; problems are logged there
            self._spawn(asyncio.to_thread(imageconfig.reload, self.config, self.images.trust))
        if "crio.runtime.log_level" in changed:
            logs.set_level(self.config.log_level)
        if "crio.image.pause_image" in changed and self.images is not None:
            self._spawn(ensure_pause_image(self.images, str(self.config.get("crio.image.pause_image"))))
        for dotted in restart:
            log.warning("%s changed but takes effect only after a restart", dotted)
        if changed:
            self.plugins.hook.crio_configure(config=self.config)

    def _spawn(self, work: Coroutine[Any, Any, object]) -> None:
        """Run ``work`` in the background, keeping a reference until it is done."""
        task = asyncio.get_running_loop().create_task(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def shutdown(self) -> None:
        """Stop serving (in-flight calls get the grace period), release plugins, write the clean marker."""
        started = time.monotonic()
        if self._server is not None:
            await self._server.stop(GRACE_PERIOD)
        crisocket.remove(self.config.listen)
        if self.streaming is not None:
            await self.streaming.stop()
        if self.stats is not None:
            await self.stats.close()
        if self.containers is not None:
            await self.containers.close()
        await self._close_storage()
        for pending in self.plugins.hook.crio_shutdown():
            if pending is not None:
                await _bounded(pending, PLUGIN_SHUTDOWN_TIMEOUT, "plugin shutdown")
        self._write_clean_shutdown_marker()
        proc.REAPER.uninstall()
        log.info("crio stopped cleanly in %.2fs", time.monotonic() - started)

    async def _close_storage(self) -> None:
        """Shut the storage driver down, unless a container filesystem is still mounted."""
        if self.access is None:
            return
        store = self.access.store
        self.access.close()
        if await asyncio.to_thread(store.shutdown):
            log.info("storage driver %s shut down", store.driver)
        else:
            log.info("storage driver %s left up: container filesystems are mounted", store.driver)

    def _consume_clean_shutdown_marker(self) -> bool:
        path = str(self.config.get("crio.clean_shutdown_file"))
        if not path:
            return False
        try:
            os.unlink(path)
        except FileNotFoundError:
            if os.path.exists(str(self.config.get("crio.version_file_persist"))):
                log.warning("the previous crio did not shut down cleanly (no %s)", path)
            return False
        return True

    def _write_clean_shutdown_marker(self) -> None:
        path = str(self.config.get("crio.clean_shutdown_file"))
        if path:
            _write_durably(path, datetime.now(UTC).isoformat() + "\n")

    def _write_version_files(self) -> None:
        for key in ("crio.version_file", "crio.version_file_persist"):
            path = str(self.config.get(key))
            if path:
                _write_durably(path, crio.__version__ + "\n")


async def _bounded(awaitable: Awaitable[object], timeout: float, what: str) -> None:
    try:
        await asyncio.wait_for(awaitable, timeout)
    except TimeoutError:
        log.warning("%s did not finish within %.1fs", what, timeout)
    except Exception:
        log.exception("%s failed", what)


def _write_durably(path: str, text: str) -> None:
    """Write ``text`` to ``path`` atomically (temp file, fsync, rename, fsync of the directory)."""
    directory = os.path.dirname(path) or "."
    os.makedirs(directory, mode=0o700, exist_ok=True)
    tmp = f"{path}.tmp.{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
