"""Running one CNI plugin binary: its environment, its stdin config, its result or error.

Plugins are started through :func:`crio.core.proc.run` (the daemon reaps every child centrally) and each
run is bounded by :data:`PLUGIN_TIMEOUT` seconds, after which the plugin is killed.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping, Sequence
from typing import Any

from crio.core import proc
from crio.plugins.cni.conflist import NetworkConfigList, find_plugin
from crio.plugins.cni.errors import CniPluginError, CniPluginNotFound, CniTimeout
from crio.plugins.cni.runtimeconf import RuntimeConf, cni_args_string, runtime_config

PLUGIN_TIMEOUT = 60.0  # seconds for one plugin run; tests lower it
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_STDERR_SHOWN = 2000  # characters of a plugin's stderr quoted in an error

log = logging.getLogger(__name__)


def plugin_env(
    command: str, rt: RuntimeConf | None, plugin_dirs: Sequence[str], base: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The plugin's environment: the daemon's (without stray ``CNI_*``) plus the CNI variables.

    ``rt`` None (GC, STATUS) leaves the container variables empty, as libcni does. ``PATH`` is kept
    (plugins run iptables and friends) and defaulted when the daemon has none.
    """
    env = {k: v for k, v in (os.environ if base is None else base).items() if not k.startswith("CNI_")}
    env.setdefault("PATH", DEFAULT_PATH)
    env.update(
        CNI_COMMAND=command,
        CNI_CONTAINERID=rt.container_id if rt else "",
        CNI_NETNS=rt.netns if rt else "",
        CNI_IFNAME=rt.ifname if rt else "",
        CNI_ARGS=cni_args_string(rt.args) if rt else "",
        CNI_PATH=os.pathsep.join(plugin_dirs),
    )
    return env


def plugin_config(
    plugin: Mapping[str, Any],
    network: NetworkConfigList,
    prev_result: Mapping[str, Any] | None,
    rt: RuntimeConf | None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The JSON a plugin reads on stdin: its config with the list's ``name`` and ``cniVersion``,
    ``prevResult`` (when given), ``runtimeConfig`` from the capability args it declares, and ``extra``."""
    config = dict(plugin)
    config["name"] = network.name
    config["cniVersion"] = network.cni_version
    if prev_result is not None:
        config["prevResult"] = prev_result
    if rt is not None:
        runtime = runtime_config(plugin, rt.capability_args)
        if runtime:
            config["runtimeConfig"] = runtime
    config.update(extra or {})
    return config


def describe(plugin: Mapping[str, Any], network: NetworkConfigList, command: str) -> str:
    """How errors name a plugin run: ``CNI plugin bridge (ADD) of network "crio"``."""
    return f"CNI plugin {plugin.get('type')} ({command}) of network {network.name!r}"


def _plugin_error(what: str, plugin_type: str, completed: proc.Completed) -> CniPluginError:
    """The error of a failed run, from the spec's error JSON on stdout or else from stderr."""
    try:
        data = json.loads(completed.stdout)
    except ValueError:
        data = None
    if isinstance(data, dict) and ("msg" in data or "code" in data):
        code = int(data.get("code") or 0)
        msg = str(data.get("msg", ""))
        details = str(data.get("details", "") or "")
        text = f"{what} failed: {msg}" + (f" ({details})" if details else "") + f" [code {code}]"
        return CniPluginError(text, plugin_type, code, msg, details)
    stderr = completed.stderr.decode(errors="replace").strip()[-_STDERR_SHOWN:]
    stdout = completed.stdout.decode(errors="replace").strip()[-_STDERR_SHOWN:]
    detail = stderr or stdout or "no error message"
    return CniPluginError(f"{what} failed with exit code {completed.returncode}: {detail}", plugin_type)


async def exec_plugin(
    command: str,
    plugin: Mapping[str, Any],
    network: NetworkConfigList,
    rt: RuntimeConf | None,
    plugin_dirs: Sequence[str],
    prev_result: Mapping[str, Any] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any] | None:
    """Run one plugin with ``command``; return its result for ADD, None otherwise.

    Raises :class:`CniPluginError` (missing binary, error reply, bad result) or :class:`CniTimeout`.
    """
    plugin_type = str(plugin.get("type", ""))
    what = describe(plugin, network, command)
    binary = find_plugin(plugin_type, plugin_dirs)
    if binary is None:
        searched = ", ".join(plugin_dirs) or "no plugin directory"
        raise CniPluginNotFound(f"{what}: plugin {plugin_type!r} not found in {searched}", plugin_type)
    stdin = json.dumps(plugin_config(plugin, network, prev_result, rt, extra)).encode()
    env = plugin_env(command, rt, plugin_dirs)
    try:
        completed = await proc.run([binary], stdin=stdin, env=env, timeout=PLUGIN_TIMEOUT, check=False)
    except TimeoutError:
        raise CniTimeout(f"{what} did not finish within {PLUGIN_TIMEOUT:g}s and was killed") from None
    except proc.ProcessError as exc:
        raise CniPluginError(f"{what}: {exc}", plugin_type) from None
    if completed.stderr:
        log.debug("%s stderr: %s", what, completed.stderr.decode(errors="replace").strip())
    if completed.returncode != 0:
        raise _plugin_error(what, plugin_type, completed)
    if command != "ADD":
        return None
    try:
        result = json.loads(completed.stdout)
    except ValueError:
        result = None
    if not isinstance(result, dict):
        shown = completed.stdout.decode(errors="replace").strip()[:_STDERR_SHOWN]
        raise CniPluginError(f"{what} returned no result object: {shown!r}", plugin_type)
    return result
