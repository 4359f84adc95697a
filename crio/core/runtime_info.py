"""Runtime identity, readiness and features: the data behind the Version, Status and RuntimeConfig RPCs."""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass, field, replace
from typing import Any

import crio
from crio.core import userns
from crio.core.config import Config
from crio.core.plugins import PluginManager
from crio.core.types import NetworkStatus, RuntimeFeatures, RuntimeHandler

log = logging.getLogger(__name__)

RUNTIME_NAME = "crio"
RUNTIME_API_VERSION = "v1"
CGROUP_DRIVER = "cgroupfs"


@dataclass(frozen=True)
class Condition:
    """One runtime condition of the CRI Status: type, status, reason and message."""

    type: str
    status: bool
    reason: str = ""
    message: str = ""


@dataclass(frozen=True)
class HandlerStatus:
    """A runtime handler as Status reports it ("" is the default handler)."""

    name: str
    features: RuntimeFeatures


@dataclass(frozen=True)
class RuntimeStatus:
    """Everything the Status RPC reports."""

    conditions: tuple[Condition, ...]
    handlers: tuple[HandlerStatus, ...]
    info: dict[str, str] = field(default_factory=dict)


class RuntimeInfo:
    """Answers what the daemon is, whether it is ready, and what its runtime handlers support."""

    def __init__(self, config: Config, plugins: PluginManager) -> None:
        self.config = config
        self.plugins = plugins
        self._features: dict[str, RuntimeFeatures] = {}
        # (driver, graph root) of the open store: pod user namespaces also need id-mappable storage.
        self.storage: tuple[str, str] | None = None

    def version(self) -> dict[str, str]:
        """Return the runtime's name and versions."""
        return {
            "runtime_name": RUNTIME_NAME,
            "runtime_version": crio.__version__,
            "runtime_api_version": RUNTIME_API_VERSION,
        }

    def network_status(self) -> NetworkStatus:
        """Return the network manager's readiness, or not-ready when no plugin manages the network."""
        status: NetworkStatus | None = self.plugins.hook.crio_network_status()
        if status is None:
            return NetworkStatus(False, "NoNetworkPlugin", "no network plugin is loaded")
        return status

    async def handler_features(self, handler: RuntimeHandler) -> RuntimeFeatures:
        """Return (and cache) what ``handler`` supports; unknown runtime types support nothing."""
        cached = self._features.get(handler.name)
        if cached is not None:
            return cached
        pending = self.plugins.hook.crio_runtime_features(handler=handler)
        features = RuntimeFeatures()
        if pending is not None:
            try:
                features = await pending
            except Exception as exc:  # a broken runtime reports no features rather than failing Status
                log.warning("runtime handler %s: cannot read features: %s", handler.name, exc)
                return features
        if features.user_namespaces:
            reason = await userns.storage_reason(*self.storage) if self.storage else "storage is not open"
            if reason:
                log.info("runtime handler %s: no pod user namespaces: %s", handler.name, reason)
                features = replace(features, user_namespaces=False)
        self._features[handler.name] = features
        return features

    async def status(self, verbose: bool) -> RuntimeStatus:
        """Return runtime and network readiness, the handlers with their features, and verbose info."""
        network = self.network_status()
        conditions = (
            Condition("RuntimeReady", True),
            Condition(
                "NetworkReady", network.ready, "" if network.ready else network.reason, network.message
            ),
        )
        handlers_by_name = self.config.runtime_handlers()
        default = handlers_by_name[self.config.default_runtime]
        names = ["", *sorted(handlers_by_name)]
        targets = [default if name == "" else handlers_by_name[name] for name in names]
        features = await asyncio.gather(*(self.handler_features(h) for h in targets))
        handlers = tuple(HandlerStatus(n, f) for n, f in zip(names, features, strict=True))
        info: dict[str, str] = {}
        if verbose:
            info = self.verbose_info(handlers)
        return RuntimeStatus(conditions, handlers, info)

    def verbose_info(self, handlers: tuple[HandlerStatus, ...]) -> dict[str, str]:
        """Return the verbose Status info: effective config, plugins, handler and security features."""
        security: dict[str, Any] = {}
        for part in self.plugins.hook.crio_security_features():
            security.update(part)
        return {
            "config": json.dumps(self.config.to_dict(), sort_keys=True),
            "plugins": json.dumps(
                [{"name": r.name, "state": r.state, "reason": r.reason} for r in self.plugins.reports]
            ),
            "runtimeHandlers": json.dumps(
                {h.name: dict(h.features.details) for h in handlers}, sort_keys=True
            ),
            "securityFeatures": json.dumps(security, sort_keys=True),
            "version": json.dumps(self.version()),
        }

    def reset_features(self) -> None:
        """Forget cached handler features (after the runtimes table changed)."""
        self._features.clear()
