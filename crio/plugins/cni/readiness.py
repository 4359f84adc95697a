"""Which network list is in use and whether networking is ready, re-evaluated when the config changes.

The network directory, its config files and the plugin directories are fingerprinted (names, sizes and
mtimes); the selected list is parsed again only when the fingerprint changes, so the checks are cheap
enough for every Status RPC and every pod operation.
"""

from __future__ import annotations

import os
import threading

from crio.core.types import NetworkStatus
from crio.plugins.cni.conflist import NetworkConfigList, config_files, select_network

NOT_READY = "NetworkPluginNotReady"


class Readiness:
    """The configured directories, the selected network list and the NetworkReady status."""

    def __init__(self) -> None:
        self.network_dir = "/etc/cni/net.d/"
        self.plugin_dirs: tuple[str, ...] = ()
        self.default_network = ""
        self._fingerprint: tuple[object, ...] | None = None
        self._network: NetworkConfigList | None = None
        self._status = NetworkStatus(False, NOT_READY, "not configured")
        self._lock = threading.Lock()

    def configure(self, network_dir: str, plugin_dirs: tuple[str, ...], default_network: str = "") -> None:
        """Set the directories and the wanted network name; the next query re-reads the configuration."""
        with self._lock:
            self.network_dir = network_dir
            self.plugin_dirs = plugin_dirs
            self.default_network = default_network
            self._fingerprint = None

    def _current_fingerprint(self) -> tuple[object, ...]:
        """What, when it changes, calls for re-reading the configuration: file names, sizes and mtimes."""
        parts: list[object] = [self.network_dir, self.plugin_dirs, self.default_network]
        for path in [self.network_dir, *config_files(self.network_dir), *self.plugin_dirs]:
            try:
                st = os.stat(path)
                parts.append((path, st.st_mtime_ns, st.st_size))
            except OSError:
                parts.append((path, None))
        return tuple(parts)

    def _refresh(self) -> None:
        with self._lock:
            fingerprint = self._current_fingerprint()
            if fingerprint == self._fingerprint:
                return
            network, problems = select_network(self.network_dir, self.plugin_dirs, self.default_network)
            self._network = network
            self._fingerprint = fingerprint
            if network is not None:
                self._status = NetworkStatus(True, "", f"CNI network {network.name!r} from {network.path}")
                return
            wanted = f" named {self.default_network!r}" if self.default_network else ""
            detail = "; ".join(problems) if problems else "no files"
            self._status = NetworkStatus(
                False, NOT_READY, f"no usable CNI configuration{wanted} in {self.network_dir}: {detail}"
            )

    def status(self) -> NetworkStatus:
        """NetworkReady: true once a usable network list exists."""
        self._refresh()
        return self._status

    def network(self) -> NetworkConfigList | None:
        """The selected network list (parsed once per configuration change), or None when none is usable."""
        self._refresh()
        return self._network
