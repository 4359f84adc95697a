"""Network plugin: pod networking through CNI plugins with libcni's semantics.

Implemented so far: readiness (NetworkReady), from the configured network directory, re-read whenever it
changes. Attaching pods arrives with the pod-sandbox issue.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from crio.core.config import Config
from crio.core.hookspecs import hookimpl
from crio.core.types import NetworkStatus
from crio.plugins.cni.conflist import config_files, select_network

NOT_READY = "NetworkPluginNotReady"


@dataclass
class _State:
    network_dir: str = "/etc/cni/net.d/"
    plugin_dirs: tuple[str, ...] = ()
    default_network: str = ""
    fingerprint: tuple[object, ...] | None = None
    status: NetworkStatus = field(default_factory=lambda: NetworkStatus(False, NOT_READY, "not configured"))


STATE = _State()


def _fingerprint() -> tuple[object, ...]:
    """What, when it changes, calls for re-reading the configuration: file names, sizes and mtimes."""
    parts: list[object] = [STATE.network_dir, STATE.plugin_dirs, STATE.default_network]
    for path in [STATE.network_dir, *config_files(STATE.network_dir), *STATE.plugin_dirs]:
        try:
            st = os.stat(path)
            parts.append((path, st.st_mtime_ns, st.st_size))
        except OSError:
            parts.append((path, None))
    return tuple(parts)


def _evaluate() -> NetworkStatus:
    network, problems = select_network(STATE.network_dir, STATE.plugin_dirs, STATE.default_network)
    if network is not None:
        return NetworkStatus(True, "", f"CNI network {network.name!r} from {network.path}")
    wanted = f" named {STATE.default_network!r}" if STATE.default_network else ""
    detail = "; ".join(problems) if problems else "no files"
    return NetworkStatus(
        False, NOT_READY, f"no usable CNI configuration{wanted} in {STATE.network_dir}: {detail}"
    )


@hookimpl
def crio_configure(config: Config) -> None:
    """Take the network directory, plugin directories and default network name from ``[crio.network]``."""
    STATE.network_dir = str(config.get("crio.network.network_dir"))
    STATE.plugin_dirs = tuple(config.get("crio.network.plugin_dirs"))
    STATE.default_network = str(config.get("crio.network.cni_default_network"))
    STATE.fingerprint = None


@hookimpl
def crio_network_status() -> NetworkStatus:
    """Report NetworkReady: true once a usable network config exists (re-read when the directory changes)."""
    fingerprint = _fingerprint()
    if fingerprint != STATE.fingerprint:
        STATE.status = _evaluate()
        STATE.fingerprint = fingerprint
    return STATE.status
