"""Network plugin: pod networking through CNI plugins with libcni's semantics.

* Readiness (NetworkReady): a usable network list in the configured directory, re-read whenever the
  directory, its files or the plugin directories change; the parsed list is kept until then.
* Setup: ADD of the selected network list for the pod's namespace (interface ``eth0``), preceded by the
  ``loopback`` plugin as network ``cni-loopback`` (interface ``lo``) when the list has no loopback plugin of
  its own. Results go to libcni's cache (``/var/lib/cni/results``), which is what pod status reads.
* Teardown: DEL of every cached attachment of the pod with the configuration it was set up with, even if
  the directory has changed since; a namespace that is already gone is tolerated. Idempotent.
* CHECK on request, and GC of this daemon's attachments of pods that no longer exist (called at daemon
  start). Entries are tagged with their daemon (:func:`cache.owner_for` its graph root): other runtimes'
  entries in the shared cache, and those of another crio with another root, are never touched.

Capability arguments offered to plugins that declare them: ``portMappings`` (CRI port mappings with a
host port), ``dns`` and ``cgroupPath``. Operations on one pod are serialized; different pods run in
parallel.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Coroutine, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from typing import Any

from crio.core import netns
from crio.core.config import Config
from crio.core.errors import FailedPrecondition, NotFound
from crio.core.hookspecs import hookimpl
from crio.core.types import NetworkStatus, PodNetworkRequest, PodNetworkResult
from crio.plugins.cni import cache, ops
from crio.plugins.cni.conflist import ConflistError, NetworkConfigList, find_plugin, parse_bytes
from crio.plugins.cni.errors import CniError
from crio.plugins.cni.readiness import Readiness
from crio.plugins.cni.result import pod_ips
from crio.plugins.cni.runtimeconf import IFNAME, RuntimeConf, from_request

LOOPBACK_NAME = "cni-loopback"
LOOPBACK_IFNAME = "lo"
LOOPBACK_NETWORK = parse_bytes(
    json.dumps({"cniVersion": "1.0.0", "name": LOOPBACK_NAME, "plugins": [{"type": "loopback"}]}).encode(),
    "<built-in loopback network>",
)

log = logging.getLogger(__name__)


@dataclass
class _State:
    readiness: Readiness = field(default_factory=Readiness)
    cache_dir: str = cache.DEFAULT_CACHE_DIR
    owner: str = cache.OWNER
    locks: dict[str, tuple[asyncio.Lock, int]] = field(default_factory=dict)


STATE = _State()


def _set_cache_dir(path: str) -> None:
    """Use another libcni cache directory (tests)."""
    STATE.cache_dir = path


@asynccontextmanager
async def _pod_lock(pod_id: str) -> AsyncIterator[None]:
    """Serialize the operations on one pod (the spec forbids parallel operations on a container)."""
    lock, users = STATE.locks.get(pod_id, (asyncio.Lock(), 0))
    STATE.locks[pod_id] = (lock, users + 1)
    try:
        async with lock:
            yield
    finally:
        lock, users = STATE.locks[pod_id]
        if users == 1:
            del STATE.locks[pod_id]
        else:
            STATE.locks[pod_id] = (lock, users - 1)


def _plugin_dirs() -> tuple[str, ...]:
    return STATE.readiness.plugin_dirs


def _require_network() -> NetworkConfigList:
    network = STATE.readiness.network()
    if network is None:
        status = STATE.readiness.status()
        raise FailedPrecondition(f"{status.reason}: {status.message}")
    return network


def _loopback_for(network: NetworkConfigList) -> NetworkConfigList | None:
    """The separate loopback network, unless ``network`` has its own loopback plugin or none exists."""
    if any(plugin.get("type") == "loopback" for plugin in network.plugins):
        return None
    if find_plugin("loopback", _plugin_dirs()) is None:
        log.warning("no CNI loopback plugin in %s: pods get no loopback interface", ", ".join(_plugin_dirs()))
        return None
    return LOOPBACK_NETWORK


def _pod_result(attachment_network: str, result: dict[str, object] | None) -> PodNetworkResult:
    if result is None:
        return PodNetworkResult()
    return PodNetworkResult(
        ips=tuple(pod_ips(result)),
        details={"network": attachment_network, "interface": IFNAME, "result": result},
    )


async def _netns_or_empty(*paths: str) -> str:
    """The first of ``paths`` that is a live network namespace, else "" (DEL then cleans up what it can)."""
    for path in paths:
        alive: bool = bool(path) and await asyncio.to_thread(netns.exists, path)
        if alive:
            return path
    return ""


async def _setup(request: PodNetworkRequest) -> PodNetworkResult:
    async with _pod_lock(request.pod_id):
        network = _require_network()
        rt = from_request(request, request.netns_path)
        loopback = _loopback_for(network)
        dirs, cache_dir, owner = _plugin_dirs(), STATE.cache_dir, STATE.owner
        lo_rt = replace(rt, ifname=LOOPBACK_IFNAME, capability_args={})
        if loopback is not None:
            await ops.add_network_list(loopback, lo_rt, dirs, cache_dir, owner)
        try:
            result = await ops.add_network_list(network, rt, dirs, cache_dir, owner)
        except BaseException:
            if loopback is not None:
                await _quiet_delete(loopback, lo_rt, None)
            raise
        log.debug("pod %s attached to network %r", request.pod_id, network.name)
        return _pod_result(network.name, result)


async def _quiet_delete(
    network: NetworkConfigList, rt: RuntimeConf, cached: dict[str, object] | None
) -> None:
    """DEL whose failure is only logged (clean-up of something that may not exist)."""
    try:
        await ops.del_network_list(network, rt, _plugin_dirs(), STATE.cache_dir, cached)
    except CniError as exc:
        log.warning("DEL of %s from network %r: %s", rt.container_id, network.name, exc)


async def _delete_attachment(attachment: cache.Attachment, netns_path: str) -> None:
    """DEL a cached attachment with the configuration and arguments it was set up with."""
    source = f"cache entry {attachment.network_name}-{attachment.container_id}-{attachment.ifname}"
    try:
        network = parse_bytes(attachment.config, source)
    except ConflistError as exc:
        raise CniError(str(exc)) from None
    rt = RuntimeConf(
        attachment.container_id,
        netns_path,
        attachment.ifname,
        attachment.cni_args,
        attachment.capability_args,
    )
    await ops.del_network_list(network, rt, _plugin_dirs(), STATE.cache_dir, attachment.result)
    if network.name != attachment.network_name:
        cache_dir = STATE.cache_dir
        await asyncio.to_thread(
            cache.remove, cache_dir, attachment.network_name, attachment.container_id, attachment.ifname
        )


async def _teardown(request: PodNetworkRequest) -> None:
    async with _pod_lock(request.pod_id):
        attachments = await asyncio.to_thread(cache.attachments, STATE.cache_dir, request.pod_id)
        # An interface without a cache entry (already torn down, or a crash during its ADD, which caches
        # only at the end) gets a best-effort DEL with today's network, before the cached ones.
        cached = {a.ifname for a in attachments}
        await _teardown_uncached(request, main=IFNAME not in cached, loopback=LOOPBACK_IFNAME not in cached)
        errors: list[CniError] = []
        for attachment in sorted(attachments, key=lambda a: a.ifname == LOOPBACK_IFNAME):
            path = await _netns_or_empty(request.netns_path, attachment.netns)
            try:
                await _delete_attachment(attachment, path)
            except CniError as exc:
                errors.append(exc)
        if errors:
            raise errors[0]
        log.debug("pod %s detached", request.pod_id)


async def _teardown_uncached(request: PodNetworkRequest, main: bool, loopback: bool) -> None:
    """DEL with today's network (the ``main`` one, and/or the ``loopback`` one), best effort."""
    network = STATE.readiness.network()
    if network is None or not (main or loopback):
        return
    rt = from_request(request, await _netns_or_empty(request.netns_path))
    if main:
        await _quiet_delete(network, rt, None)
    lo_network = _loopback_for(network) if loopback else None
    if lo_network is not None:
        await _quiet_delete(lo_network, replace(rt, ifname=LOOPBACK_IFNAME, capability_args={}), None)


def _main_attachment(pod_id: str) -> cache.Attachment | None:
    """The pod's cached attachment on interface eth0 (the selected network's first, any network's else)."""
    network = STATE.readiness.network()
    if network is not None:
        found = cache.read(cache.path_for(STATE.cache_dir, network.name, pod_id, IFNAME))
        if found is not None and found.container_id == pod_id:
            return found
    return next((a for a in cache.attachments(STATE.cache_dir, pod_id) if a.ifname == IFNAME), None)


async def _pod_status(request: PodNetworkRequest) -> PodNetworkResult:
    attachment = await asyncio.to_thread(_main_attachment, request.pod_id)
    if attachment is None:
        return PodNetworkResult()
    return _pod_result(attachment.network_name, dict(attachment.result) if attachment.result else None)


async def check(request: PodNetworkRequest) -> None:
    """CNI CHECK of the pod's attachment with its cached configuration (skipped when unsupported).

    Raises NotFound when the pod has no attachment, the plugin's error when CHECK fails.
    """
    async with _pod_lock(request.pod_id):
        attachment = await asyncio.to_thread(_main_attachment, request.pod_id)
        if attachment is None:
            raise NotFound(f"pod {request.pod_id} is not attached to a CNI network")
        try:
            network = parse_bytes(attachment.config, f"cache entry of pod {request.pod_id}")
        except ConflistError as exc:
            raise CniError(str(exc)) from None
        rt = RuntimeConf(
            attachment.container_id,
            request.netns_path or attachment.netns,
            attachment.ifname,
            attachment.cni_args,
            attachment.capability_args,
        )
        await ops.check_network_list(network, rt, _plugin_dirs(), attachment.result)


@dataclass(frozen=True)
class GcReport:
    """What a GC did: the container IDs whose attachments were deleted, and failures by container ID."""

    deleted: tuple[str, ...] = ()
    failed: dict[str, str] = field(default_factory=dict)


async def gc(active_pod_ids: Sequence[str]) -> GcReport:
    """Delete this daemon's cached attachments whose container is not an active pod.

    Only entries this daemon wrote (owner tag :attr:`_State.owner`) are considered, whatever their network:
    other runtimes, and other crio daemons with other roots, share the cache directory. Then, for a spec
    1.1.0+ network, the plugins get the GC command; the valid attachments are the active pods' and every
    cached attachment to that network that another daemon or runtime owns.
    """
    active = set(active_pod_ids)
    network = STATE.readiness.network()
    every = await asyncio.to_thread(cache.attachments, STATE.cache_dir)
    stale = [a for a in every if a.owner == STATE.owner and a.container_id not in active]
    deleted: list[str] = []
    failed: dict[str, str] = {}
    for attachment in stale:
        async with _pod_lock(attachment.container_id):
            try:
                await _delete_attachment(attachment, await _netns_or_empty(attachment.netns))
                deleted.append(attachment.container_id)
            except CniError as exc:
                failed[attachment.container_id] = str(exc)
                log.warning("GC of the stale attachment of %s: %s", attachment.container_id, exc)
    if network is not None:
        try:
            valid = [(pod_id, IFNAME) for pod_id in sorted(active)] + [
                (a.container_id, a.ifname)
                for a in every
                if a.owner != STATE.owner and a.network_name == network.name
            ]
            await ops.gc_plugins(network, valid, _plugin_dirs())
        except CniError as exc:
            log.warning("GC of network %r: %s", network.name, exc)
    if deleted:
        log.info("GC removed the network attachments of %d stale pod(s)", len(set(deleted)))
    return GcReport(tuple(deleted), failed)


async def _gc_hook(active_pod_ids: Sequence[str]) -> None:
    await gc(active_pod_ids)


@hookimpl
def crio_configure(config: Config) -> None:
    """Take the network directory, plugin directories and default network name from ``[crio.network]``,
    and the owner tag of this daemon's cache entries from its graph root (``[crio] root``)."""
    STATE.owner = cache.owner_for(str(config.get("crio.root")))
    STATE.readiness.configure(
        str(config.get("crio.network.network_dir")),
        tuple(config.get("crio.network.plugin_dirs")),
        str(config.get("crio.network.cni_default_network")),
    )


@hookimpl
def crio_network_status() -> NetworkStatus:
    """Report NetworkReady: true once a usable network config exists (re-read when the directory changes)."""
    return STATE.readiness.status()


@hookimpl
def crio_network_setup(request: PodNetworkRequest) -> Coroutine[Any, Any, PodNetworkResult]:
    """ADD the pod to the selected network (and to cni-loopback); resolves to its addresses."""
    return _setup(request)


@hookimpl
def crio_network_teardown(request: PodNetworkRequest) -> Coroutine[Any, Any, None]:
    """DEL every cached attachment of the pod with the configuration it was set up with. Idempotent."""
    return _teardown(request)


@hookimpl
def crio_network_pod_status(request: PodNetworkRequest) -> Coroutine[Any, Any, PodNetworkResult]:
    """The pod's addresses from its cached ADD result (none when it is not attached)."""
    return _pod_status(request)


@hookimpl
def crio_network_check(request: PodNetworkRequest) -> Coroutine[Any, Any, None]:
    """CNI CHECK of the pod's attachment (see :func:`check`)."""
    return check(request)


@hookimpl
def crio_network_gc(active_pod_ids: Sequence[str]) -> Coroutine[Any, Any, None]:
    """Delete the attachments of pods not in ``active_pod_ids`` (see :func:`gc`)."""
    return _gc_hook(active_pod_ids)
