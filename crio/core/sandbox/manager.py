"""Pod sandbox lifecycle: run, stop, remove, status, list, and restore after a daemon restart.

A pod is a containers/storage container (its infra container, whose ID is the pod's ID) made from the pause
image, plus a pinned network namespace attached by the network plugin, a /dev/shm tmpfs, and the
hostname/resolv.conf/hosts files its containers share. Every step of a run registers its undo, so a failure
leaves nothing behind; every state change is persisted atomically in ``sandbox.json`` before memory changes.

Runs and removals are journaled (:mod:`crio.core.journal`, operations ``run_pod`` and ``remove_pod``): the
intent is on disk before the first host change and the CNI ADD is recorded before it is attempted, so that
after a crash the restart purges the pod (undoes an interrupted run, finishes an interrupted removal) with
one idempotent routine, :meth:`SandboxManager._purge`, the same one a removal uses.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any, Protocol

from crio.core import mountutil, netns, security, userns
from crio.core.bundlefiles import read_spec, write_spec
from crio.core.cleanup import CleanupStack
from crio.core.config import Config
from crio.core.crirecords import PodSandboxConfig, PodSandboxMetadata, PortMapping
from crio.core.errors import FailedPrecondition, Unavailable
from crio.core.events import EventBus
from crio.core.images.pause import ensure_pause_image
from crio.core.images.service import ImageService
from crio.core.journal import Entry, Intent, Journal
from crio.core.lifecycle import machine
from crio.core.lifecycle.engine import Lifecycle
from crio.core.plugins import PluginManager
from crio.core.runtime_calls import RuntimeCalls
from crio.core.sandbox import files, validate
from crio.core.sandbox.model import NOTREADY, READY, Sandbox, config_digest
from crio.core.spec.infra import InfraSpecInput, infra_spec
from crio.core.storage.atomic import atomic_write
from crio.core.storage.layerid import random_id
from crio.core.storeaccess import StoreAccess
from crio.core.types import ContainerBundle, PodNetworkRequest, PodNetworkResult, SecurityRequest

log = logging.getLogger(__name__)

SHM_SIZE = "64m"
# The infra (pause) container is stopped with SIGKILL at once: right after start it may not have installed
# its SIGTERM handler yet, and as PID 1 of its namespace an unhandled SIGTERM would be dropped.
INFRA_STOP_TIMEOUT = 0.0
# StopPodSandbox gives the pod's containers this long after their stop signal (the kubelet stops them first).
POD_CONTAINER_STOP_TIMEOUT = 10.0
# Journal operations of pods.
OP_RUN, OP_REMOVE = "run_pod", "remove_pod"
# The one journal step of a run, recorded before it is attempted: the CNI ADD, whose undo (a DEL) cannot be
# decided by looking at the host. Everything else the recovery finds by probing the store and the paths.
STEP_NETWORK = "network"


class PodMembers(Protocol):
    """What the pod manager needs from the container manager."""

    async def stop_pod_containers(self, pod_id: str, timeout: float) -> None:
        """Stop every container of the pod."""

    async def remove_pod_containers(self, pod_id: str) -> None:
        """Remove every container of the pod."""


def storage_name(metadata: PodSandboxMetadata) -> str:
    """The storage name of a pod's infra container, as CRI-O names it."""
    return f"k8s_POD_{metadata.name}_{metadata.namespace}_{metadata.uid}_{metadata.attempt}"


class SandboxManager:
    """Owns every pod sandbox of the daemon."""

    def __init__(
        self,
        config: Config,
        access: StoreAccess,
        plugins: PluginManager,
        images: ImageService,
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
        self.runtime = runtime
        self.journal = journal
        self.table: Lifecycle[Sandbox] = Lifecycle(machine.POD, Sandbox, access, events)
        self.members: PodMembers | None = None  # the pods' containers, set by the daemon

    # ------------------------------------------------------------------------------------------ lookups

    @property
    def sandboxes(self) -> dict[str, Sandbox]:
        """Every pod (not those being created), by ID."""
        return self.table.records

    def get(self, id_or_prefix: str) -> Sandbox:
        """The pod with this ID or unique ID prefix; NotFound otherwise."""
        return self.table.get(id_or_prefix)

    def find(self, id_or_prefix: str) -> Sandbox | None:
        """Like :meth:`get`, but None for an unknown pod."""
        return self.table.find(id_or_prefix)

    def list(
        self, id_prefix: str = "", state: str | None = None, labels: Mapping[str, str] | None = None
    ) -> list[Sandbox]:
        """Pods matching an ID (prefix), a state and a label selector (all must match), oldest first."""
        return self.table.select(id_prefix, state, labels)

    # ------------------------------------------------------------------------------------------------ run

    async def run(self, config: PodSandboxConfig, runtime_handler: str) -> str:
        """Create and start a pod sandbox; return its ID. A retry of the same request returns the same pod."""
        validate.validate_metadata(config)
        validate.validate_hostname(config)
        host_network = validate.namespace_mode(config, "network") == "NODE"
        host_ipc = validate.namespace_mode(config, "ipc") == "NODE"
        host_pid = validate.namespace_mode(config, "pid") == "NODE"
        sysctls = validate.validate_sysctls(config.sysctls, host_network, host_ipc)
        port_mappings = list(config.port_mappings)
        validate.validate_port_mappings(port_mappings)
        handler = self.runtime.handler(runtime_handler)
        if validate.validate_userns(config) == "POD":
            graphroot = str(self.store.graphroot)
            reason = await userns.pod_support(self.plugins, handler, self.store.driver, graphroot)
            if reason:
                raise FailedPrecondition(
                    f"runtime handler {handler.name!r} cannot give pods user namespaces: {reason}"
                )
        security_request = security.pod_request(config)
        await security.check(self.plugins, security_request)
        resolv = files.resolv_conf(config.dns_config, await asyncio.to_thread(_host_resolv))
        name = storage_name(config.metadata)
        digest = config_digest(config, runtime_handler)
        holder = self.table.holder(name)
        if holder is not None:
            existing = self.sandboxes.get(holder)
            if existing is not None and existing.config_digest == digest and existing.state == READY:
                return existing.id
        if not host_network:
            status = self.plugins.hook.crio_network_status()
            if status is None or not status.ready:
                reason = status.message if status is not None else "no network plugin is loaded"
                raise Unavailable(f"pod network is not ready: {reason}")
        pod_id = random_id()
        self.table.reserve(name, pod_id)
        try:
            intent = await self.journal.begin(
                OP_RUN, pod_id, name=name, handler=handler.name, config=config.to_dict()
            )
        except BaseException:
            self.table.abandon(pod_id)
            raise
        try:
            async with CleanupStack(f"RunPodSandbox {name}") as undo:
                sandbox = await self._create(
                    undo,
                    intent,
                    pod_id,
                    name,
                    config,
                    handler.name,
                    digest,
                    resolv,
                    sysctls,
                    host_network,
                    host_ipc,
                    host_pid,
                    replace(security_request, pod_id=pod_id),
                )
        except BaseException:
            self.table.abandon(pod_id)
            await asyncio.shield(intent.end())  # undone in process by the cleanup stack
            raise
        await intent.end()
        log.info("pod %s (%s) is ready, IPs %s", pod_id, name, ", ".join(sandbox.ips) or "host network")
        return pod_id

    async def _create(
        self,
        undo: CleanupStack,
        intent: Intent,
        pod_id: str,
        name: str,
        config: PodSandboxConfig,
        handler_name: str,
        digest: str,
        resolv: str,
        sysctls: dict[str, str],
        host_network: bool,
        host_ipc: bool,
        host_pid: bool,
        security_request: SecurityRequest,
    ) -> Sandbox:
        pause_name = str(self.config.get("crio.image.pause_image"))
        pause_id = await ensure_pause_image(self.images, pause_name)
        if pause_id is None:
            raise FailedPrecondition(f"the pause image {pause_name} is not available and cannot be built")
        metadata = json.dumps(
            {
                "pod-name": name,
                "pod-id": pod_id,
                "image-name": pause_name,
                "image-id": pause_id,
                "name": name,
                "created-at": int(time.time()),
                "mountlabel": "",
            }
        )
        await self.access.call(self.store.create_container, pod_id, [name], pause_id, metadata)
        undo.push("storage container", lambda: self.access.bulk(self.store.delete_container, pod_id))
        rundir = await self.access.call(self.store.container_run_directory, pod_id)
        userns_path, netns_path = "", ""
        uids: list[userns.IDMapping] = []
        gids: list[userns.IDMapping] = []
        mount_options: list[str] = []
        if validate.validate_userns(config) == "POD":
            uids, gids = userns.mappings_of(config)
            namespaces_dir = str(self.config.get("crio.runtime.namespaces_dir"))
            user_file, net_file = await userns.create_pinned(namespaces_dir, f"crio-{pod_id}", uids, gids)
            userns_path, netns_path = str(user_file), str(net_file)
            undo.push("user namespace", lambda: asyncio.to_thread(netns.remove, user_file))
            undo.push("network namespace", lambda: asyncio.to_thread(netns.remove, net_file))
            mount_options = userns.storage_options(userns_path, uids, gids)
        rootfs = await self.access.call(self.store.mount, pod_id, mount_options)
        undo.push("rootfs mount", lambda: self.access.call(self.store.unmount, pod_id, True))
        userdata = await self.access.call(self.store.container_directory, pod_id)
        metadata_cri = config.metadata
        hostname = os.uname().nodename if host_network else (config.hostname or pod_id[:12])
        sandbox = Sandbox(
            id=pod_id,
            name=name,
            config=config,
            runtime_handler=handler_name,
            created_at=time.time_ns(),
            config_digest=digest,
            hostname=hostname,
            cgroup_parent=config.cgroup_parent,
            userns_path=userns_path,
            uid_mappings=[m.oci() for m in uids],
            gid_mappings=[m.oci() for m in gids],
        )
        log_directory = config.log_directory
        if log_directory:
            await asyncio.to_thread(os.makedirs, log_directory, 0o755, True)
        if not host_ipc:
            sandbox.shm_path = await asyncio.to_thread(_mount_shm, rundir / "shm")
            undo.push("shm mount", lambda: asyncio.to_thread(mountutil.unmount, sandbox.shm_path, True))
        if netns_path:
            sandbox.netns_path = netns_path  # owned by the pod's user namespace
        elif not host_network:
            ns_dir = Path(str(self.config.get("crio.runtime.namespaces_dir"))) / "netns"
            sandbox.netns_path = str(await asyncio.to_thread(netns.create, ns_dir, f"crio-{pod_id}"))
            undo.push("network namespace", lambda: asyncio.to_thread(netns.remove, Path(sandbox.netns_path)))
        if not host_network:
            await intent.step(
                STEP_NETWORK, netns_path=sandbox.netns_path, cgroup_parent=sandbox.cgroup_parent
            )
            result = await self._attach(sandbox)
            undo.push("pod network", lambda: self._detach(sandbox))
            sandbox.ips = list(result.ips)
            sandbox.network_attached = True
        sandbox.files = await asyncio.to_thread(
            _write_pod_files, userdata, hostname, resolv, files.hosts_file(hostname, sandbox.ips)
        )
        pause_command = str(self.config.get("crio.image.pause_command"))
        image_config = (await self.images.status(pause_id, verbose=True)) if not pause_command else None
        args = [pause_command] if pause_command else _entrypoint(image_config.config if image_config else {})
        spec = infra_spec(
            InfraSpecInput(
                pod_id=pod_id,
                rootfs=str(rootfs),
                args=args,
                env=[],
                hostname=hostname,
                cgroups_path=f"{sandbox.cgroup_parent or '/crio'}/crio-{pod_id}",
                netns_path=sandbox.netns_path,
                host_network=host_network,
                host_ipc=host_ipc,
                host_pid=host_pid,
                shm_path=sandbox.shm_path,
                sysctls=sysctls,
                annotations={
                    "io.kubernetes.cri.container-type": "sandbox",
                    "io.kubernetes.cri.sandbox-id": pod_id,
                    "io.kubernetes.cri.sandbox-name": metadata_cri.name,
                    "io.kubernetes.cri.sandbox-namespace": metadata_cri.namespace,
                    "io.kubernetes.cri.sandbox-uid": metadata_cri.uid,
                },
                userns_path=sandbox.userns_path,
                uid_mappings=sandbox.uid_mappings,
                gid_mappings=sandbox.gid_mappings,
            )
        )
        await security.adjust(self.plugins, security_request, spec)
        spec_bytes = json.dumps(spec, indent=1).encode()
        await asyncio.to_thread(write_spec, spec_bytes, userdata, rundir)
        bundle = self._bundle(sandbox, rundir)
        created = await self.runtime.create(handler_name, bundle)
        undo.push("infra container", lambda: self.runtime.destroy(handler_name, bundle))
        sandbox.infra_pid = created.pid
        await self.runtime.start(handler_name, bundle)
        await self.table.created(sandbox)  # the last step: nothing after it can fail
        return sandbox

    def _bundle(self, sandbox: Sandbox, rundir: Path) -> ContainerBundle:
        return self.runtime.bundle(sandbox.id, sandbox.name, sandbox.id, rundir)

    def _network_request(self, sandbox: Sandbox) -> PodNetworkRequest:
        metadata = sandbox.config.metadata
        dns_config = sandbox.config.dns_config
        return PodNetworkRequest(
            pod_id=sandbox.id,
            name=metadata.name,
            namespace=metadata.namespace,
            uid=metadata.uid,
            netns_path=sandbox.netns_path,
            port_mappings=[_port_mapping(m) for m in sandbox.config.port_mappings],
            dns=dns_config.to_dict() if dns_config is not None else {},
            cgroup_parent=sandbox.cgroup_parent,
        )

    async def _attach(self, sandbox: Sandbox) -> PodNetworkResult:
        pending = self.plugins.hook.crio_network_setup(request=self._network_request(sandbox))
        if pending is None:
            raise Unavailable("no network plugin can attach the pod")
        result: PodNetworkResult = await pending
        return result

    async def _detach(self, sandbox: Sandbox) -> None:
        pending = self.plugins.hook.crio_network_teardown(request=self._network_request(sandbox))
        if pending is not None:
            await pending

    # ----------------------------------------------------------------------------------------- stop/remove

    async def stop(self, pod_id: str) -> None:
        """Stop the pod: kill its infra container, detach its network, release its /dev/shm. Idempotent."""
        sandbox = self.find(pod_id)
        if sandbox is None:
            return
        async with self.table.lock(sandbox.id):
            await self._stop_locked(sandbox)

    async def _stop_locked(self, sandbox: Sandbox) -> None:
        if self.members is not None:
            await self.members.stop_pod_containers(sandbox.id, POD_CONTAINER_STOP_TIMEOUT)
        rundir = await self.access.call(self.store.container_run_directory, sandbox.id)
        bundle = self._bundle(sandbox, rundir)
        await self.runtime.stop(sandbox.runtime_handler, bundle, INFRA_STOP_TIMEOUT)
        released: dict[str, Any] = {}
        if sandbox.network_attached:
            await self._detach(sandbox)
            released["network_attached"] = False
        if sandbox.shm_path:
            await asyncio.to_thread(mountutil.unmount, sandbox.shm_path, True)
        if await self.table.commit(sandbox, only_from=(READY,), state=NOTREADY, **released):
            log.info("pod %s (%s) stopped", sandbox.id, sandbox.name)
        elif released:  # stopped again (the infra container had died): record what this stop released
            await self.table.commit(sandbox, **released)

    async def remove(self, pod_id: str) -> None:
        """Stop (if needed) and remove the pod and everything it holds. Idempotent."""
        sandbox = self.find(pod_id)
        if sandbox is None:
            return
        async with self.table.lock(sandbox.id):
            if sandbox.id not in self.table:
                return
            rundir = await self.access.call(self.store.container_run_directory, sandbox.id)
            intent = await self.journal.begin(
                OP_REMOVE,
                sandbox.id,
                name=sandbox.name,
                handler=sandbox.runtime_handler,
                config=sandbox.config.to_dict(),
                netns_path=sandbox.netns_path,
                cgroup_parent=sandbox.cgroup_parent,
                rundir=str(rundir),
            )
            await self._stop_locked(sandbox)
            await self.table.removing(sandbox)
            if self.members is not None:
                await self.members.remove_pod_containers(sandbox.id)
            await self._purge(intent.entry, network=sandbox.network_attached)
            await intent.end()
            self.table.removed(sandbox)
        log.info("pod %s (%s) removed", sandbox.id, sandbox.name)

    async def _purge(self, entry: Entry, network: bool) -> None:
        """Remove everything a pod holds on the host, whatever of it exists: its infra container and
        monitor, its network attachment (``network``), /dev/shm, pinned namespaces, rootfs mount and storage
        container. Idempotent: a removal and the recovery of an interrupted run or removal both use it."""
        pod_id = entry.object_id
        name = str(entry.data.get("name", ""))
        handler = str(entry.data.get("handler", ""))
        found = await self.access.call(self.store.container, pod_id)
        exists = found is not None and found.id == pod_id
        rundir = str(entry.data.get("rundir", ""))
        if exists:
            rundir = str(await self.access.call(self.store.container_run_directory, pod_id))
        namespaces_dir = str(self.config.get("crio.runtime.namespaces_dir"))
        netns_path = str(
            entry.data.get("netns_path") or netns.directory_for(namespaces_dir) / f"crio-{pod_id}"
        )
        stub = Sandbox(
            id=pod_id,
            name=name,
            config=PodSandboxConfig.from_dict(entry.data.get("config") or {}, "journal config"),
            runtime_handler=handler,
            created_at=0,
            config_digest="",
            netns_path=netns_path,
            cgroup_parent=str(entry.data.get("cgroup_parent", "")),
        )
        if rundir:
            await self.runtime.destroy(handler, self._bundle(stub, Path(rundir)))
            await asyncio.to_thread(mountutil.unmount, str(Path(rundir) / "shm"), True)
        if network:
            await self._detach(stub)
        pinned = {
            Path(netns_path),
            netns.directory_for(namespaces_dir) / f"crio-{pod_id}",
            userns.directory_for(namespaces_dir) / f"crio-{pod_id}",
        }
        for path in pinned:
            await asyncio.to_thread(netns.remove, path)
        if exists:
            await self.access.call(self.store.unmount, pod_id, True)
            await self.access.bulk(self.store.delete_container, pod_id)
        else:  # an interrupted deletion may have left the directories
            await self.access.bulk(self.store.remove_container_directories, pod_id)

    # ------------------------------------------------------------------------------------------- status

    async def status(self, pod_id: str) -> tuple[Sandbox, dict[str, Any]]:
        """The pod and verbose info (infra pid, OCI spec)."""
        sandbox = self.get(pod_id)
        rundir = await self.access.call(self.store.container_run_directory, sandbox.id)
        state = await self.runtime.state(sandbox.runtime_handler, self._bundle(sandbox, rundir))
        if sandbox.state == READY and state.status not in ("created", "running"):
            await self.table.commit(sandbox, only_from=(READY,), state=NOTREADY)  # the infra container died
        spec = await asyncio.to_thread(read_spec, rundir)
        info = {"pid": state.pid, "runtimeSpec": spec, "netns": sandbox.netns_path, "image": sandbox.name}
        return sandbox, info

    # ------------------------------------------------------------------------------------------ restore

    async def restore(self) -> None:
        """Rebuild the pod table from the store after a (re)start: first purge every pod whose run or removal
        was interrupted (journal), then load the others; drop pods that were never completed."""
        await self.journal.recover_all(
            {OP_RUN: "interrupted run of pod", OP_REMOVE: "interrupted removal of pod"}, self._recover
        )
        for stored in await self.table.stored(lambda object_id, meta: meta.get("pod-id") == object_id):
            if stored.record is None:
                log.warning("pod %s has no usable state (%s): removing it", stored.id, stored.problem)
                await self.journal.purge_now(OP_REMOVE, stored.id, self._recover, "leftover pod", handler="")
                continue
            self.table.adopt(stored.record)
        if self.sandboxes:
            log.info("restored %d pod sandbox(es)", len(self.sandboxes))
        active = list(self.sandboxes)
        for pending in self.plugins.hook.crio_network_gc(active_pod_ids=active):
            if pending is not None:
                await pending

    async def _recover(self, entry: Entry) -> None:
        """Purge the pod of an interrupted run (undo) or removal (finish)."""
        await self._purge(entry, network=entry.op == OP_REMOVE or entry.done(STEP_NETWORK))


def _port_mapping(mapping: PortMapping) -> dict[str, Any]:
    return {
        "hostPort": mapping.host_port,
        "containerPort": mapping.container_port,
        "protocol": mapping.protocol.lower(),
        "hostIP": mapping.host_ip,
    }


def _entrypoint(image_config: Mapping[str, Any]) -> list[str]:
    settings = image_config.get("config") or {}
    args = list(settings.get("Entrypoint") or []) + list(settings.get("Cmd") or [])
    if not args:
        raise FailedPrecondition("the pause image has no entrypoint and crio.image.pause_command is empty")
    return args


def _host_resolv() -> str:
    try:
        return Path("/etc/resolv.conf").read_text()
    except OSError:
        return ""


def _mount_shm(path: Path) -> str:
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    flags = mountutil.MS_NOSUID | mountutil.MS_NODEV | mountutil.MS_NOEXEC
    mountutil.mount("shm", str(path), "tmpfs", flags, f"mode=1777,size={SHM_SIZE}")
    return str(path)


def _write_pod_files(directory: Path, hostname: str, resolv: str, hosts: str) -> dict[str, str]:
    written = {}
    for name, text in (
        ("hostname", files.hostname_file(hostname)),
        ("resolv.conf", resolv),
        ("hosts", hosts),
    ):
        path = directory / name
        atomic_write(path, text.encode(), mode=0o644, durable=False)
        written[name] = str(path)
    return written
