"""Container lifecycle inside pods: create, start, stop, remove, status, list, update, reopen log, restore.

A container is a containers/storage container on its image, with its OCI spec in its ContainerDirectory and
ContainerRunDirectory, run by the pod's runtime handler under a monitor. Exits are noticed without polling
(the handler's wait hook) and every state change is persisted atomically in ``container.json`` before memory
changes.

Creations and removals are journaled (:mod:`crio.core.journal`, operations ``create_container`` and
``remove_container``): after a crash the restart purges such a container (undoes the creation, finishes the
removal) with :meth:`ContainerManager._purge`, the routine a removal uses; a container whose pod is gone is
purged too.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from crio.core import userns
from crio.core.bundlefiles import read_spec, write_spec
from crio.core.cleanup import CleanupStack
from crio.core.config import Config
from crio.core.containers import imagevolumes, specbuild
from crio.core.containers.model import (
    CREATED,
    EXITED,
    REASON_COMPLETED,
    REASON_ERROR,
    REASON_OOM,
    RUNNING,
    Container,
)
from crio.core.crirecords import ContainerConfig, LinuxContainerResources, PodSandboxConfig
from crio.core.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
from crio.core.events import EventBus
from crio.core.images.service import ImageService
from crio.core.journal import Entry, Journal
from crio.core.lifecycle import machine
from crio.core.lifecycle.engine import Lifecycle
from crio.core.lifecycle.machine import REMOVING
from crio.core.plugins import PluginManager
from crio.core.runtime_calls import RuntimeCalls
from crio.core.sandbox.manager import SandboxManager
from crio.core.sandbox.model import READY, Sandbox
from crio.core.storage.layerid import random_id
from crio.core.storeaccess import StoreAccess
from crio.core.types import ContainerBundle, ContainerRuntimeState, ExecResult

log = logging.getLogger(__name__)

# Journal operations of containers. A creation records no steps: its recovery probes the store (the
# runtime container can exist only once the storage container does) and purges whatever it finds.
OP_CREATE, OP_REMOVE = "create_container", "remove_container"
LEFTOVER = "leftover container"  # how the log names a container purged at start-up without a usable record


def storage_name(container_config: ContainerConfig, pod: Sandbox) -> str:
    """The storage name of a container, as CRI-O names it."""
    meta, own = pod.config.metadata, container_config.metadata
    return f"k8s_{own.name}_{meta.name}_{meta.namespace}_{meta.uid}_{own.attempt}"


def _mappings(pod: Sandbox) -> tuple[list[userns.IDMapping], list[userns.IDMapping]]:
    """The pod's (uid, gid) mappings, from their OCI form."""

    def convert(raw: list[dict[str, int]]) -> list[userns.IDMapping]:
        return [userns.IDMapping(m["containerID"], m["hostID"], m["size"]) for m in raw]

    return convert(pod.uid_mappings), convert(pod.gid_mappings)


def log_path_of(pod: Sandbox, config: ContainerConfig) -> str:
    """The container's CRI log path: the pod's log directory joined with the container's relative log_path.

    A log_path that is absolute or climbs out with ``..`` is refused (CRI-O would write outside).
    """
    relative = config.log_path
    directory = pod.config.log_directory
    if not relative:
        return ""
    if os.path.isabs(relative) or ".." in Path(relative).parts:
        raise InvalidArgument(
            f"log_path {relative!r} must be relative to the pod's log directory, without '..'"
        )
    if not directory:
        raise InvalidArgument(f"log_path {relative!r} given but the pod has no log_directory")
    return os.path.join(directory, relative)


class ContainerManager:
    """Owns every container of the daemon."""

    def __init__(
        self,
        config: Config,
        access: StoreAccess,
        plugins: PluginManager,
        images: ImageService,
        pods: SandboxManager,
        runtime: RuntimeCalls,
        journal: Journal,
        events: EventBus,
    ) -> None:
        self.config = config
        self.events = events
        self.access = access
        self.store = access.store
        self.plugins = plugins
        self.images = images
        self.pods = pods
        self.runtime = runtime
        self.journal = journal
        self.table: Lifecycle[Container] = Lifecycle(machine.CONTAINER, Container, access, events)
        self._watchers: dict[str, asyncio.Task[None]] = {}

    # ------------------------------------------------------------------------------------------ lookups

    @property
    def containers(self) -> dict[str, Container]:
        """Every container (not those being created), by ID."""
        return self.table.records

    def get(self, id_or_prefix: str) -> Container:
        """The container with this ID or unique ID prefix; NotFound otherwise."""
        return self.table.get(id_or_prefix)

    def find(self, id_or_prefix: str) -> Container | None:
        """Like :meth:`get`, but None for an unknown container."""
        return self.table.find(id_or_prefix)

    def of_pod(self, pod_id: str) -> list[Container]:
        """The containers of one pod."""
        return self.table.select(where=lambda c: c.pod_id == pod_id)

    def list(
        self,
        id_prefix: str = "",
        state: str | None = None,
        pod_id: str = "",
        labels: Mapping[str, str] | None = None,
    ) -> list[Container]:
        """Containers matching ID (prefix), state, pod (ID or prefix) and a label selector, oldest first."""
        in_pod = (lambda c: c.pod_id.startswith(pod_id)) if pod_id else None
        return self.table.select(id_prefix, state, labels, in_pod)

    # ---------------------------------------------------------------------------------------------- create

    async def create(
        self, pod_id: str, config: ContainerConfig, pod_config: PodSandboxConfig | None = None
    ) -> str:
        """Create a container in a pod; return its ID."""
        if not config.metadata.name:
            raise InvalidArgument("ContainerConfig.metadata.name is required")
        image = config.image.image
        if not image:
            raise InvalidArgument("ContainerConfig.image.image is required")
        pod = self.pods.get(pod_id)
        if pod.state != READY:
            raise FailedPrecondition(f"pod sandbox {pod.id} is not ready")
        log_path = log_path_of(pod, config)
        name = storage_name(config, pod)
        holder = self.table.holder(name)
        if holder is not None:
            raise AlreadyExists(f"container name {name} is reserved by container {holder}")
        found = await self.images.resolve(image)
        if found is None:
            raise NotFound(f"image {image} is not in the store; pull it first")
        # The signature policy may have changed since the pull: judge the stored image again.
        await self.images.verify_for_container(found, image, pod.config.metadata.namespace)
        volumes = await imagevolumes.plan(self.images, config, pod.config.metadata.namespace)
        container_id = random_id()
        self.table.reserve(name, container_id, pod.id)
        try:
            intent = await self.journal.begin(
                OP_CREATE, container_id, name=name, pod_id=pod.id, handler=pod.runtime_handler
            )
        except BaseException:
            self.table.abandon(container_id)
            raise
        try:
            async with CleanupStack(f"CreateContainer {name}") as undo:
                container = await self._create(
                    undo, container_id, name, pod, config, image, found, log_path, volumes
                )
        except BaseException:
            self.table.abandon(container_id)
            await asyncio.shield(intent.end())  # undone in process by the cleanup stack
            raise
        await intent.end()
        log.info("container %s (%s) created in pod %s", container_id, name, pod.id)
        return container.id

    async def _create(
        self,
        undo: CleanupStack,
        container_id: str,
        name: str,
        pod: Sandbox,
        config: ContainerConfig,
        image: str,
        found: Any,
        log_path: str,
        volumes: Sequence[imagevolumes.PlannedVolume],
    ) -> Container:
        info = await self.images.info(found, with_config=True)
        image_name = info.repo_tags[0] if info.repo_tags else found.id
        metadata = json.dumps(
            {
                "pod-name": pod.name,
                "pod-id": pod.id,
                "image-name": image_name,
                "image-id": found.id,
                "name": name,
                "created-at": int(time.time()),
                "mountlabel": "",
            }
        )
        await self.access.call(
            self.store.create_container,
            container_id,
            [name],
            found.id,
            metadata,
            volume_images=[v.image_id for v in volumes],
        )
        undo.push("storage container", lambda: self.access.bulk(self.store.delete_container, container_id))
        options = userns.storage_options(pod.userns_path, *_mappings(pod)) if pod.userns_path else []
        rootfs = await self.access.call(self.store.mount, container_id, options)
        undo.push("rootfs mount", lambda: self.access.call(self.store.unmount, container_id, True))
        mounted = await imagevolumes.mount_all(self.access, container_id, volumes, options, undo)
        userdata = await self.access.call(self.store.container_directory, container_id)
        rundir = await self.access.call(self.store.container_run_directory, container_id)
        pod_status_pid, pod_spec = await self._infra(pod)
        built = await specbuild.build(
            self.config,
            self.plugins,
            container_id,
            config,
            pod,
            info.config,
            str(rootfs),
            pod_status_pid,
            pod_spec,
            Path(userdata),
            imagevolumes.sources(mounted),
        )
        if log_path:
            await asyncio.to_thread(os.makedirs, os.path.dirname(log_path), 0o755, True)
        spec_bytes = json.dumps(built.spec, indent=1).encode()
        await asyncio.to_thread(write_spec, spec_bytes, userdata, rundir)
        container = Container(
            id=container_id,
            name=name,
            pod_id=pod.id,
            config=config,
            image=image,
            image_id=found.id,
            image_name=image_name,
            runtime_handler=pod.runtime_handler,
            log_path=log_path,
            created_at=time.time_ns(),
            stop_signal=built.stop_signal,
            user=built.user,
            image_volumes=[v.to_dict() for v in mounted],
        )
        bundle = self._bundle(container, rundir)
        state = await self.runtime.create(pod.runtime_handler, bundle)
        undo.push("runtime container", lambda: self.runtime.destroy(pod.runtime_handler, bundle))
        container.pid = state.pid
        await self.table.created(container)  # the last step: nothing after it can fail
        return container

    async def _infra(self, pod: Sandbox) -> tuple[int, dict[str, Any]]:
        """The pid and OCI spec of the pod's running infra container."""
        _, info = await self.pods.status(pod.id)
        pid = int(info.get("pid", 0))
        if pid <= 0:
            raise FailedPrecondition(f"pod sandbox {pod.id} has no running infra container")
        spec = info.get("runtimeSpec")
        return pid, spec if isinstance(spec, dict) else {}

    def _bundle(self, container: Container, rundir: Path) -> ContainerBundle:
        return self.runtime.bundle(
            container.id,
            container.name,
            container.pod_id,
            rundir,
            container.log_path,
            terminal=container.config.tty,
            stdin=container.config.stdin,
            stdin_once=container.config.stdin_once,
        )

    async def bundle_of(self, container: Container) -> ContainerBundle:
        """The runtime bundle description of a container."""
        rundir = await self.access.call(self.store.container_run_directory, container.id)
        return self._bundle(container, rundir)

    # ------------------------------------------------------------------------------------- start / stop

    async def start(self, container_id: str) -> None:
        """Start a created container and watch for its exit."""
        container = self.get(container_id)
        async with self.table.lock(container.id):
            if container.state != CREATED:
                raise FailedPrecondition(f"container {container.id} is {container.state}, not created")
            bundle = await self.bundle_of(container)
            started_at = time.time_ns()
            await self.runtime.start(container.runtime_handler, bundle)
            await self.table.commit(container, state=RUNNING, started_at=started_at)
        self._watch(container)

    def _watch(self, container: Container) -> None:
        if container.id in self._watchers:
            return
        task = asyncio.get_running_loop().create_task(self._wait_exit(container), name=f"wait {container.id}")
        self._watchers[container.id] = task
        task.add_done_callback(lambda _t: self._watchers.pop(container.id, None))

    async def _wait_exit(self, container: Container) -> None:
        bundle = await self.bundle_of(container)
        try:
            state = await self.runtime.wait(container.runtime_handler, bundle, timeout=float("inf"))
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("waiting for container %s failed", container.id)
            return
        if state is not None:
            await self._record_exit(container, state)

    async def _record_exit(self, container: Container, state: ContainerRuntimeState) -> None:
        if container.id not in self.table:
            return
        exit_code = state.exit_code if state.exit_code is not None else -1
        reason = REASON_COMPLETED if exit_code == 0 else REASON_ERROR
        if state.oom_killed:
            reason = REASON_OOM
        finished_at = max(state.finished_at or time.time_ns(), container.started_at)
        recorded = await self.table.commit(
            container,
            only_from=(CREATED, RUNNING),  # not when exited already, or being removed (no exit recorded)
            state=EXITED,
            exit_code=exit_code,
            finished_at=finished_at,
            reason=reason,
        )
        if recorded:
            log.info("container %s exited with %d (%s)", container.id, container.exit_code, container.reason)

    async def stop(self, container_id: str, timeout: float) -> None:
        """Stop a container: its stop signal, SIGKILL after ``timeout`` seconds. Unknown or stopped: fine.

        Not serialized with other stops: a second stop with a shorter timeout takes effect at once.
        """
        container = self.find(container_id)
        if container is None or container.state in (EXITED, REMOVING):
            return
        bundle = await self.bundle_of(container)
        stop_signal = _signal_number(container.stop_signal)
        # A created container never ran its process: nothing would handle the stop signal.
        grace = 0.0 if container.state == CREATED else max(timeout, 0)
        state = await self.runtime.stop(container.runtime_handler, bundle, grace, stop_signal)
        if container.state == CREATED and state.status == "stopped" and state.exit_code is None:
            state = ContainerRuntimeState("stopped", exit_code=-1, finished_at=time.time_ns())
        await self._record_exit(container, state)

    async def remove(self, container_id: str) -> None:
        """Stop (if running) and remove a container and its storage. Unknown: fine."""
        container = self.find(container_id)
        if container is None:
            return
        async with self.table.lock(container.id):
            if container.id not in self.table:
                return
            bundle = await self.bundle_of(container)
            intent = await self.journal.begin(
                OP_REMOVE,
                container.id,
                name=container.name,
                pod_id=container.pod_id,
                handler=container.runtime_handler,
                rundir=str(bundle.bundle),
            )
            watcher = self._watchers.get(container.id)
            if watcher is not None:  # the container goes: its exit is no longer recorded
                watcher.cancel()
            await self.table.removing(container)
            await self._purge(intent.entry)
            await intent.end()
            self.table.removed(container)
        log.info("container %s (%s) removed", container.id, container.name)

    # ------------------------------------------------------------------------------------- status & co

    async def status(self, container_id: str) -> tuple[Container, dict[str, Any]]:
        """A container and verbose info (pid, OCI spec)."""
        container = self.get(container_id)
        bundle = await self.bundle_of(container)
        if container.state == RUNNING:
            state = await self.runtime.state(container.runtime_handler, bundle)
            if state.status == "stopped":
                await self._record_exit(container, state)
        spec = await asyncio.to_thread(read_spec, bundle.bundle)
        return container, {"pid": container.pid, "runtimeSpec": spec, "sandboxID": container.pod_id}

    async def update_resources(self, container_id: str, linux: LinuxContainerResources) -> None:
        """Apply new Linux resources to a running or created container."""
        container = self.get(container_id)
        if container.state not in (CREATED, RUNNING):
            raise FailedPrecondition(f"container {container.id} is {container.state}")
        resources = specbuild.oci_resources(linux)
        await self.runtime.update(container.runtime_handler, await self.bundle_of(container), resources)
        await self.table.commit(container, config=container.config.with_resources(linux))

    async def reopen_log(self, container_id: str) -> None:
        """Make the monitor reopen the container's log file (after the kubelet rotated it)."""
        container = self.get(container_id)
        if container.state != RUNNING:
            raise FailedPrecondition(f"container {container.id} is not running")
        await self.runtime.reopen_log(container.runtime_handler, await self.bundle_of(container))

    async def exec_sync(
        self, container_id: str, command: Sequence[str], timeout: float, limit: int
    ) -> ExecResult:
        """Run ``command`` in a running container; the timeout kills it (0: no timeout)."""
        container = self.get(container_id)
        if container.state != RUNNING:
            raise FailedPrecondition(f"container {container.id} is {container.state}, not running")
        return await self.runtime.exec_sync(
            container.runtime_handler, await self.bundle_of(container), command, timeout, limit
        )

    async def writable_layer(self, container: Container) -> tuple[str, int, int]:
        """The writable layer of ``container``: (mount point, bytes, inodes)."""
        return await self.access.bulk(self.store.container_layer_usage, container.id)

    async def stop_pod_containers(self, pod_id: str, timeout: float) -> None:
        """Stop every container of a pod (before the pod itself stops)."""
        await asyncio.gather(*(self.stop(c.id, timeout) for c in self.of_pod(pod_id)))

    async def remove_pod_containers(self, pod_id: str) -> None:
        """Remove every container of a pod (before the pod itself is removed)."""
        await asyncio.gather(*(self.remove(c.id) for c in self.of_pod(pod_id)))

    # ------------------------------------------------------------------------------------------- purge

    async def _purge(self, entry: Entry) -> None:
        """Remove everything a container holds on the host, whatever of it exists: its runtime container and
        monitor, its rootfs and image volume mounts, its storage container. Idempotent: a removal and the
        recovery of an interrupted creation or removal both use it."""
        container_id = entry.object_id
        found = await self.access.call(self.store.container, container_id)
        exists = found is not None and found.id == container_id
        rundir = str(entry.data.get("rundir", ""))
        if exists:
            rundir = str(await self.access.call(self.store.container_run_directory, container_id))
        if rundir:
            bundle = self.runtime.bundle(
                container_id, str(entry.data.get("name", "")), str(entry.data.get("pod_id", "")), Path(rundir)
            )
            await self.runtime.destroy(str(entry.data.get("handler", "")), bundle)
        if exists:
            await self.access.call(self.store.unmount, container_id, True)
            await self.access.bulk(self.store.delete_container, container_id)
        else:  # an interrupted deletion may have left the directories
            await self.access.bulk(self.store.remove_container_directories, container_id)

    # ------------------------------------------------------------------------------------------- restore

    async def restore(self) -> None:
        """Rebuild the container table after a (re)start and reconcile each with the runtime.

        First every container whose creation or removal was interrupted is purged (journal), and so is every
        container whose pod no longer exists (its pod's removal purged the pod, not yet its containers).
        """
        await self.journal.recover_all(
            {OP_CREATE: "interrupted creation of container", OP_REMOVE: "interrupted removal of container"},
            self._purge,
        )
        for stored in await self.table.stored(_is_container):
            container = stored.record
            if container is None:
                log.warning("container %s has no usable state (%s): removing it", stored.id, stored.problem)
                pod_id = str(stored.metadata.get("pod-id", ""))
                await self.journal.purge_now(OP_REMOVE, stored.id, self._purge, LEFTOVER, pod_id=pod_id)
                continue
            if container.pod_id not in self.pods.sandboxes:
                log.warning("container %s: its pod %s is gone; removing it", container.id, container.pod_id)
                await self.journal.purge_now(
                    OP_REMOVE,
                    container.id,
                    self._purge,
                    LEFTOVER,
                    name=container.name,
                    pod_id=container.pod_id,
                    handler=container.runtime_handler,
                )
                continue
            self.table.adopt(container)
            if container.state == RUNNING:
                bundle = await self.bundle_of(container)
                state = await self.runtime.state(container.runtime_handler, bundle)
                if state.status == "stopped":
                    await self._record_exit(container, state)
                else:
                    self._watch(container)
        if self.containers:
            log.info("restored %d container(s)", len(self.containers))

    async def close(self) -> None:
        """Stop watching exits (the containers keep running)."""
        for task in list(self._watchers.values()):
            task.cancel()
        await asyncio.gather(*self._watchers.values(), return_exceptions=True)


def _is_container(object_id: str, metadata: Mapping[str, Any]) -> bool:
    """Whether a storage container is a crio container (not a pod's infra container)."""
    pod_id = metadata.get("pod-id")
    return bool(pod_id) and pod_id != object_id


def _signal_number(name: str) -> int:
    if not name:
        return signal.SIGTERM
    text = name.upper()
    if text.isdigit():
        return int(text)
    try:
        return int(signal.Signals[text if text.startswith("SIG") else f"SIG{text}"])
    except KeyError:
        return signal.SIGTERM
