"""Network-list operations with libcni's semantics: ADD, DEL, CHECK and GC over a plugin chain.

* ADD runs the plugins in order, each getting the previous plugin's result as ``prevResult``; the last
  result is cached. When a plugin fails (or hangs), DEL runs in reverse order for it and every plugin
  before it, so that nothing is leaked, then the error is raised.
* DEL runs the plugins in reverse order with the cached result as ``prevResult`` (spec 0.4.0+). Unlike
  libcni it goes on after a failing plugin (DEL is idempotent, so the others still release what they
  hold) and raises the first error at the end; the cache entry is removed only when every plugin succeeded.
  A plugin whose DEL fails is run once more (a plugin that stopped half-way finds less to do the second
  time); if it fails again and its only complaint is that the thing it deletes does not exist (an iptables
  chain someone else removed, say), the DEL counts as done: what it should remove is gone.
* CHECK (spec 0.4.0+, not with ``disableCheck``) runs the plugins in order with the cached result.
* GC deletes the cached attachments whose container is no longer valid, then (spec 1.1.0+) sends the
  plugins the GC command with the valid attachments.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from crio.plugins.cni import cache
from crio.plugins.cni.conflist import NetworkConfigList
from crio.plugins.cni.errors import CniError, CniPluginError, CniPluginNotFound
from crio.plugins.cni.invoke import exec_plugin
from crio.plugins.cni.result import ResultError, at_least, convert
from crio.plugins.cni.runtimeconf import RuntimeConf

log = logging.getLogger(__name__)

# What plugins (and the iptables, ip and nft commands they run) say when the object to delete is gone.
_ALREADY_GONE = re.compile(
    r"does not exist|No chain/target/match by that name|does a matching rule exist|"
    r"Cannot find device|no such (?:network interface|device|chain|rule)",
    re.IGNORECASE,
)


def already_gone(error: CniPluginError) -> bool:
    """Whether a failed DEL complains only that what it deletes does not exist."""
    return bool(_ALREADY_GONE.search(error.msg or str(error))) or bool(
        error.details and _ALREADY_GONE.search(error.details)
    )


def _attachment(
    network: NetworkConfigList, rt: RuntimeConf, result: Mapping[str, Any] | None, owner: str
) -> cache.Attachment:
    return cache.Attachment(
        container_id=rt.container_id,
        network_name=network.name,
        ifname=rt.ifname,
        config=network.data,
        netns=rt.netns,
        cni_args=rt.args,
        capability_args=rt.capability_args,
        result=result,
        owner=owner,
    )


async def add_network_list(
    network: NetworkConfigList,
    rt: RuntimeConf,
    plugin_dirs: Sequence[str],
    cache_dir: str | Path,
    owner: str = cache.OWNER,
) -> dict[str, Any]:
    """Attach ``rt``'s container to ``network``; return the chain's result (also cached, tagged ``owner``).

    On failure nothing stays attached: DEL has run for the whole list. If that clean-up fails too, an
    entry without a result is cached so that a later teardown or GC retries the DEL.
    """
    result: dict[str, Any] | None = None
    attempted = 0
    try:
        for plugin in network.plugins:
            attempted += 1
            result = await exec_plugin("ADD", plugin, network, rt, plugin_dirs, result)
        assert result is not None  # a list has at least one plugin
        await asyncio.to_thread(cache.write, cache_dir, _attachment(network, rt, result, owner))
    except (CniError, OSError, asyncio.CancelledError) as exc:
        if isinstance(exc, CniPluginNotFound):
            attempted -= 1  # never ran
        note = await _clean_up_failed_add(network, rt, plugin_dirs, cache_dir, attempted, owner)
        if isinstance(exc, OSError):
            raise CniError(f"cannot cache the result of network {network.name!r}: {exc}{note}") from exc
        if note and isinstance(exc, CniError):
            exc.args = (f"{exc}{note}",)
        raise
    return result


async def _clean_up_failed_add(
    network: NetworkConfigList,
    rt: RuntimeConf,
    plugin_dirs: Sequence[str],
    cache_dir: str | Path,
    attempted: int,
    owner: str,
) -> str:
    """DEL, in reverse order, the plugins ADD ran (the failing one included) after a failed ADD.

    Plugins after the failing one (and a missing one) never ran and hold nothing. Returns a note for the
    error message when the clean-up failed too.
    """
    try:
        await _delete_plugins(network, rt, plugin_dirs, None, network.plugins[:attempted])
    except CniError as cleanup:
        log.warning("clean-up after the failed ADD of %s left resources: %s", rt.container_id, cleanup)
        await asyncio.to_thread(cache.write, cache_dir, _attachment(network, rt, None, owner))
        return f"; clean-up (DEL) failed too: {cleanup}"
    await asyncio.to_thread(cache.remove, cache_dir, network.name, rt.container_id, rt.ifname)
    return ""


async def _delete_plugins(
    network: NetworkConfigList,
    rt: RuntimeConf,
    plugin_dirs: Sequence[str],
    prev_result: Mapping[str, Any] | None,
    plugins: Sequence[Mapping[str, Any]] | None = None,
) -> None:
    """DEL every plugin (of ``plugins``, default the list's) in reverse order; raise after trying all."""
    errors: list[CniError] = []
    for plugin in reversed(network.plugins if plugins is None else plugins):
        try:
            await _delete_plugin(network, plugin, rt, plugin_dirs, prev_result)
        except CniError as exc:
            errors.append(exc)
    if len(errors) == 1:
        raise errors[0]
    if errors:
        raise CniPluginError("; ".join(str(e) for e in errors), "")


async def _delete_plugin(
    network: NetworkConfigList,
    plugin: Mapping[str, Any],
    rt: RuntimeConf,
    plugin_dirs: Sequence[str],
    prev_result: Mapping[str, Any] | None,
) -> None:
    """DEL one plugin, retried once after a plugin error; "already gone" after the retry counts as done."""
    try:
        await exec_plugin("DEL", plugin, network, rt, plugin_dirs, prev_result)
        return
    except CniPluginNotFound:
        raise
    except CniPluginError as first:
        log.info("%s; retrying once", first)
    try:
        await exec_plugin("DEL", plugin, network, rt, plugin_dirs, prev_result)
    except CniPluginNotFound:
        raise
    except CniPluginError as again:
        if not already_gone(again):
            raise
        log.warning("%s; what it deletes is already gone, so the DEL counts as done", again)


def _prev_result(network: NetworkConfigList, cached: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The cached result in the list's version, or None (no result, or spec older than 0.4.0)."""
    if cached is None or not at_least(network.cni_version, "0.4.0"):
        return None
    try:
        return convert(cached, network.cni_version or "0.1.0")
    except ResultError as exc:
        log.warning("ignoring the cached result of network %r: %s", network.name, exc)
        return None


async def del_network_list(
    network: NetworkConfigList,
    rt: RuntimeConf,
    plugin_dirs: Sequence[str],
    cache_dir: str | Path,
    cached_result: Mapping[str, Any] | None,
) -> None:
    """Detach ``rt``'s container from ``network`` and drop its cache entry. Idempotent."""
    await _delete_plugins(network, rt, plugin_dirs, _prev_result(network, cached_result))
    await asyncio.to_thread(cache.remove, cache_dir, network.name, rt.container_id, rt.ifname)


def check_supported(network: NetworkConfigList) -> bool:
    """CHECK exists from spec 0.4.0 on and is skipped for lists with ``disableCheck``."""
    return at_least(network.cni_version, "0.4.0") and not network.disable_check


async def check_network_list(
    network: NetworkConfigList,
    rt: RuntimeConf,
    plugin_dirs: Sequence[str],
    cached_result: Mapping[str, Any] | None,
) -> None:
    """CHECK ``rt``'s attachment (a no-op when unsupported); raises the first plugin's error."""
    if not check_supported(network):
        return
    prev = _prev_result(network, cached_result)
    for plugin in network.plugins:
        await exec_plugin("CHECK", plugin, network, rt, plugin_dirs, prev)


async def gc_plugins(
    network: NetworkConfigList, valid: Iterable[tuple[str, str]], plugin_dirs: Sequence[str]
) -> None:
    """Send the GC command (spec 1.1.0+) with the valid ``(container id, ifname)`` attachments."""
    if not at_least(network.cni_version, "1.1.0"):
        return
    extra = {"cni.dev/valid-attachments": [{"containerID": cid, "ifname": ifname} for cid, ifname in valid]}
    for plugin in network.plugins:
        await exec_plugin("GC", plugin, network, None, plugin_dirs, None, extra)
