"""The start-up sweep: after the journal's recoveries and the restore of pods and containers, remove the crio
objects on the host that no record or journal entry owns (what is ours: :mod:`crio.core.sweep.rules`).

In this order, so that each step still finds the evidence the next one needs: runtime containers (force
delete through their handler, which also stops their monitor and removes its files), monitors still running
(SIGKILL), cgroup leftovers, exit files and attach links, pinned namespaces, then storage: unowned crio
records with their layer and directories, and the directories of proven IDs without a record. CNI
attachments of pods that no longer exist are the network plugin's start-up GC (``crio_network_gc``).

One log line per object removed and one summary line. A failure is logged as a warning and the sweep goes
on; nothing here fails the daemon's start. Idempotent: a second run finds nothing. It runs before the
daemon serves, so no request can create an object while it decides. Blocking work runs in worker threads
and children go through the runtime plugins (:mod:`crio.core.proc`).
"""

from __future__ import annotations

import asyncio
import collections
import logging
import os
import time
from collections.abc import Awaitable, Set
from dataclasses import dataclass, field
from pathlib import Path

from crio.core import netns, userns
from crio.core.config import Config
from crio.core.journal import Journal
from crio.core.runtime_calls import RuntimeCalls
from crio.core.spec.annotations import SANDBOX_ID
from crio.core.storeaccess import StoreAccess
from crio.core.sweep import host, rules
from crio.core.types import RuntimeContainer

log = logging.getLogger(__name__)

# How long killed monitors get to be gone before their exit files are removed.
MONITOR_EXIT_TIMEOUT = 2.0
_POLL = 0.01
# The kinds of objects in the summary, in the order they are removed.
KINDS = (
    "runtime container",
    "monitor",
    "cgroup",
    "pinned namespace",
    "storage container",
    "container directory",
)


@dataclass
class Report:
    """What one sweep removed (by kind), how many steps failed, and how long it took."""

    removed: collections.Counter[str] = field(default_factory=collections.Counter)
    failed: int = 0
    seconds: float = 0.0

    def summary(self) -> str:
        """The summary log line."""
        parts = [f"{self.removed[k]} {k}(s)" for k in KINDS if self.removed[k]]
        text = f"removed {', '.join(parts)}" if parts else "nothing to remove"
        if self.failed:
            text += f"; {self.failed} step(s) failed (see the warnings above)"
        return f"start-up sweep ({self.seconds:.3f}s): {text}"


class Sweeper:
    """One sweep over the host for one daemon (its store, configuration and runtime handlers)."""

    def __init__(
        self,
        config: Config,
        access: StoreAccess,
        runtime: RuntimeCalls,
        journal: Journal,
        known: Set[str],
    ) -> None:
        self.config = config
        self.access = access
        self.store = access.store
        self.runtime = runtime
        self.journal = journal
        self.known = frozenset(known)
        self.report = Report()
        self.run_containers_dir = Path(self.store.container_store.run_dir)
        self.exit_dir = Path(str(config.get("crio.runtime.container_exits_dir")))
        self.attach_dir = Path(str(config.get("crio.runtime.container_attach_socket_dir")))
        self.namespaces_dir = str(config.get("crio.runtime.namespaces_dir"))

    async def run(self) -> Report:
        """Sweep once; return the report (also logged)."""
        started = time.monotonic()
        scope = await self._scope()
        containers, kept = await self._runtime_containers(scope)
        monitors = await self._monitors(scope)
        # A container the runtime could not delete keeps its namespaces, cgroup and storage until next time.
        proven = rules.proven_ids(scope, containers, monitors) - kept
        if proven:
            await self._cgroups(proven, containers)
            await asyncio.to_thread(self._forget_files, proven)
            await self._pinned(proven)
            await self._storage(scope, proven)
        self.report.seconds = time.monotonic() - started
        log.info("%s", self.report.summary())
        return self.report

    async def _attempt(self, what: str, work: Awaitable[object]) -> bool:
        """Await ``work``; a failure is a warning naming ``what``. Returns whether it worked."""
        try:
            await work
        except Exception as exc:
            log.warning("start-up sweep: cannot remove %s: %s", what, exc)
            self.report.failed += 1
            return False
        return True

    def _removed(self, kind: str, message: str, *args: object) -> None:
        self.report.removed[kind] += 1
        log.info("start-up sweep: " + message, *args)

    # ---------------------------------------------------------------------------------------- evidence

    async def _scope(self) -> rules.Scope:
        records = await self.access.call(self.store.containers)
        pending = await asyncio.to_thread(self.journal.pending)
        run_dirs = {str(self.run_containers_dir), os.path.realpath(self.run_containers_dir)}
        return rules.Scope.of(
            sorted(run_dirs),
            self.exit_dir,
            [(record.id, record.metadata) for record in records],
            self.known | {entry.object_id for entry in pending},
        )

    # ------------------------------------------------------------------------------- runtime and monitors

    async def _runtime_containers(self, scope: rules.Scope) -> tuple[list[RuntimeContainer], set[str]]:
        """Force-delete the orphan runtime containers of every handler; return every orphan found and the
        IDs of those that could not be deleted."""
        found: list[RuntimeContainer] = []
        kept: set[str] = set()
        seen: set[tuple[str, str]] = set()
        for name, handler in sorted(self.config.runtime_handlers().items()):
            state_dir = (handler.runtime_path, handler.runtime_root)
            if state_dir in seen:
                continue
            seen.add(state_dir)
            try:
                listed = await self.runtime.list_all(name)
            except Exception as exc:
                log.warning("start-up sweep: cannot list the containers of runtime handler %s: %s", name, exc)
                self.report.failed += 1
                continue
            for container in rules.orphan_runtime_containers(scope, listed or []):
                found.append(container)
                bundle = self.runtime.bundle(
                    container.id, "", container.annotations.get(SANDBOX_ID, ""), Path(container.bundle)
                )
                if not await self._attempt(
                    f"runtime container {container.id}", self.runtime.destroy(name, bundle)
                ):
                    kept.add(container.id)
                else:
                    self._removed(
                        "runtime container",
                        "removed runtime container %s (%s, handler %s, bundle %s)",
                        container.id,
                        container.status,
                        name,
                        container.bundle,
                    )
        return found, kept

    async def _monitors(self, scope: rules.Scope) -> list[rules.Monitor]:
        """SIGKILL the orphan monitors still running; return them."""
        names = {"conmon"} | {
            os.path.basename(h.monitor_path)
            for h in self.config.runtime_handlers().values()
            if h.monitor_path
        }
        orphans = rules.orphan_monitors(scope, await asyncio.to_thread(host.monitors, names))
        for monitor in orphans:
            await asyncio.to_thread(host.kill, monitor.pid)
            self._removed("monitor", "killed monitor %d of container %s", monitor.pid, monitor.container_id)
        deadline = time.monotonic() + MONITOR_EXIT_TIMEOUT
        waiting = [m.pid for m in orphans]
        while waiting and time.monotonic() < deadline:
            await asyncio.sleep(_POLL)
            waiting = await asyncio.to_thread(host.still_running, waiting)
        for pid in waiting:
            log.warning("start-up sweep: monitor %d is still running after SIGKILL", pid)
            self.report.failed += 1
        return orphans

    # ------------------------------------------------------------------------------------ host leftovers

    async def _cgroups(self, proven: Set[str], containers: list[RuntimeContainer]) -> None:
        """rmdir the empty cgroup directories left of proven containers."""
        reported = {c.id: c.cgroup_paths for c in containers}
        roots = await asyncio.to_thread(host.hierarchies)
        for container_id in sorted(proven):
            bundle = self.run_containers_dir / container_id / rules.USERDATA
            path = await asyncio.to_thread(host.cgroups_path_of, bundle)
            candidates = rules.cgroup_dirs(container_id, reported.get(container_id, ()), path, roots)
            existing = [d for d in candidates if await asyncio.to_thread(os.path.isdir, d)]
            if not existing:
                continue
            removed, problems = await asyncio.to_thread(host.remove_empty_dirs, existing)
            if removed:
                self._removed(
                    "cgroup",
                    "removed cgroup %s of container %s (%d hierarchies)",
                    f"{rules.PREFIX}{container_id}",
                    container_id,
                    len(removed),
                )
            if problems:
                log.warning("start-up sweep: cannot remove cgroup %s", "; ".join(problems))
                self.report.failed += 1

    def _forget_files(self, proven: Set[str]) -> None:
        """Remove the exit files and attach links of proven containers (blocking)."""
        for container_id in proven:
            if host.remove_link_or_file(self.exit_dir / container_id):
                log.debug("start-up sweep: removed exit file of container %s", container_id)
            if host.remove_link_or_file(self.attach_dir / container_id, symlink_only=True):
                log.debug("start-up sweep: removed attach link of container %s", container_id)

    async def _pinned(self, proven: Set[str]) -> None:
        """Unpin the namespaces of proven pods."""
        for directory in (
            netns.directory_for(self.namespaces_dir),
            userns.directory_for(self.namespaces_dir),
        ):
            names = await asyncio.to_thread(host.entries, directory)
            for name in rules.orphan_pinned(names, proven):
                path = directory / name
                if await self._attempt(f"pinned namespace {path}", asyncio.to_thread(netns.remove, path)):
                    self._removed("pinned namespace", "removed pinned namespace %s", path)

    # ------------------------------------------------------------------------------------------- storage

    def _directories(self, container_id: str) -> list[Path]:
        """Both directories of a storage container (graph root and run root)."""
        return [self.store.container_store.data_dir(container_id), self.run_containers_dir / container_id]

    async def _storage(self, scope: rules.Scope, proven: Set[str]) -> None:
        """Delete the orphan crio records (layer and directories) and the directories of record-less
        proven IDs."""
        for container_id in [i for i in rules.orphan_records(scope) if i in proven]:
            if await self._attempt(f"storage container {container_id}", self._delete(container_id)):
                self._removed("storage container", "removed storage container %s", container_id)
        for container_id in sorted(proven - scope.crio_records - scope.other_records):
            directories = self._directories(container_id)
            if not any([await asyncio.to_thread(d.exists) for d in directories]):
                continue
            if await self._attempt(
                f"directories of container {container_id}", self._delete_directories(container_id)
            ):
                self._removed("container directory", "removed the directories of container %s", container_id)

    async def _delete(self, container_id: str) -> None:
        await asyncio.to_thread(host.unmount_under, self._directories(container_id))
        await self.access.bulk(self.store.delete_container, container_id)

    async def _delete_directories(self, container_id: str) -> None:
        await asyncio.to_thread(host.unmount_under, self._directories(container_id))
        await self.access.bulk(self.store.remove_container_directories, container_id)


async def sweep(
    config: Config,
    access: StoreAccess,
    runtime: RuntimeCalls,
    journal: Journal,
    known_pods: Set[str],
    known_containers: Set[str],
) -> Report:
    """Remove what no loaded pod or container (``known_pods``, ``known_containers``) and no pending journal
    entry owns; never raises (a failure is a warning and counted in the report)."""
    sweeper = Sweeper(config, access, runtime, journal, set(known_pods) | set(known_containers))
    try:
        return await sweeper.run()
    except Exception:
        log.exception("start-up sweep: stopped by an unexpected error; the daemon starts anyway")
        sweeper.report.failed += 1
        return sweeper.report
