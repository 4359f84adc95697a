"""Plugin discovery and loading: entry points in the group ``crio.plugins``, enable/disable lists, reports.

Built-in plugins register through the same entry points as third-party ones. A plugin whose optional
dependency is missing is skipped with one log line naming the extra that installs it.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pluggy
from importlib_metadata import EntryPoint, PackageNotFoundError, entry_points, version

from crio.core import hookspecs

if TYPE_CHECKING:
    from crio.core.config import Config

ENTRY_POINT_GROUP = "crio.plugins"

LOADED = "loaded"
SKIPPED = "skipped"
DISABLED = "disabled"
FAILED = "failed"

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PluginReport:
    """What happened to one discovered plugin: its name, where it comes from, its state and why."""

    name: str
    value: str
    distribution: str
    state: str
    reason: str = ""
    hooks: tuple[str, ...] = ()


def discover() -> list[EntryPoint]:
    """Return the entry points of group ``crio.plugins``, one per name (the first distribution wins)."""
    seen: dict[str, EntryPoint] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        seen.setdefault(ep.name, ep)
    return sorted(seen.values(), key=lambda ep: ep.name)


def _distribution_name(ep: EntryPoint) -> str:
    dist = ep.dist
    return f"{dist.name} {dist.version}" if dist is not None else "?"


def plugin_extra(ep: EntryPoint) -> str | None:
    """Return the extra of the plugin's distribution that the plugin needs, or None.

    Convention: a plugin whose name is also an extra of its distribution (``crio[seccomp]`` for the
    ``seccomp`` plugin) needs that extra's requirements.
    """
    dist = ep.dist
    if dist is None:
        return None
    extras = dist.metadata.get_all("Provides-Extra") or []
    return ep.name if ep.name in extras else None


def _missing_requirements(ep: EntryPoint) -> list[str]:
    """Return the requirements of the plugin's extra that are not installed."""
    extra = plugin_extra(ep)
    if extra is None or ep.dist is None:
        return []
    missing = []
    for requirement in ep.dist.requires or []:
        name, _, marker = requirement.partition(";")
        wanted = re.search(r"extra\s*==\s*['\"]([^'\"]+)['\"]", marker)
        if wanted is None or wanted.group(1) != extra:
            continue
        project = re.split(r"[\s\[<>=!~(]", name.strip(), maxsplit=1)[0]
        try:
            version(project)
        except PackageNotFoundError:
            missing.append(project)
    return missing


def _extra_hint(ep: EntryPoint) -> str:
    dist_name = ep.dist.name if ep.dist is not None else ep.name
    extra = plugin_extra(ep)
    return f"pip install '{dist_name}[{extra}]'" if extra else f"reinstall {dist_name} with its dependencies"


class PluginManager:
    """Loads crio plugins and exposes their hooks as ``manager.hook.<name>``."""

    def __init__(self) -> None:
        self.pm = pluggy.PluginManager(hookspecs.PROJECT)
        self.pm.add_hookspecs(hookspecs)
        self.reports: list[PluginReport] = []

    @property
    def hook(self) -> Any:
        """The pluggy hook relay: ``manager.hook.crio_network_status()`` calls every implementation."""
        return self.pm.hook

    def load_entry_points(self, config: Config, entry_points_: Iterable[EntryPoint] | None = None) -> None:
        """Discover and load plugins, honouring ``[crio.plugins] enabled`` / ``disabled`` of ``config``."""
        enabled = set(config.get("crio.plugins.enabled"))
        disabled = set(config.get("crio.plugins.disabled"))
        for ep in discover() if entry_points_ is None else entry_points_:
            origin = _distribution_name(ep)
            if ep.name in disabled or (enabled and ep.name not in enabled):
                why = (
                    "listed in crio.plugins.disabled"
                    if ep.name in disabled
                    else "not in crio.plugins.enabled"
                )
                self._report(ep.name, ep.value, origin, DISABLED, why)
                continue
            self._load_one(ep, origin, config)

    def _load_one(self, ep: EntryPoint, origin: str, config: Config) -> None:
        missing = _missing_requirements(ep)
        if missing:
            why = f"missing optional dependency {', '.join(missing)}: {_extra_hint(ep)}"
            self._report(ep.name, ep.value, origin, SKIPPED, why)
            return
        try:
            plugin = ep.load()
        except ModuleNotFoundError as exc:
            why = f"missing optional dependency {exc.name}: {_extra_hint(ep)}"
            self._report(ep.name, ep.value, origin, SKIPPED, why)
            return
        except Exception as exc:  # a broken third-party plugin must not take the daemon down
            self._report(ep.name, ep.value, origin, FAILED, f"import failed: {type(exc).__name__}: {exc}")
            return
        self.register(plugin, ep.name, config, value=ep.value, origin=origin)

    def register(self, plugin: Any, name: str, config: Config, value: str = "", origin: str = "") -> bool:
        """Register one plugin object; return True when it is loaded (False: skipped or failed)."""
        try:
            self.pm.register(plugin, name=name)
        except (ValueError, pluggy.PluginValidationError) as exc:
            self._report(name, value, origin, FAILED, f"invalid plugin: {exc}")
            return False
        reason = self._unavailable_reason(plugin, config)
        if reason:
            self.pm.unregister(plugin)
            self._report(name, value, origin, SKIPPED, str(reason))
            return False
        hooks = tuple(sorted(caller.name for caller in self.pm.get_hookcallers(plugin) or []))
        self._report(name, value, origin, LOADED, "", hooks)
        return True

    def _unavailable_reason(self, plugin: Any, config: Config) -> str | None:
        """Call the plugin's own ``crio_plugin_unavailable`` (and no other plugin's)."""
        for impl in self.pm.hook.crio_plugin_unavailable.get_hookimpls():
            if impl.plugin is plugin:
                kwargs = {"config": config}
                reason = impl.function(*(kwargs[arg] for arg in impl.argnames))
                return str(reason) if reason else None
        return None

    def _report(
        self, name: str, value: str, origin: str, state: str, reason: str, hooks: tuple[str, ...] = ()
    ) -> None:
        self.reports.append(PluginReport(name, value, origin, state, reason, hooks))
        if state == LOADED:
            log.debug(
                "plugin %s loaded from %s (hooks: %s)", name, value or origin, ", ".join(hooks) or "none"
            )
        elif state == DISABLED:
            log.info("plugin %s disabled: %s", name, reason)
        else:
            log.warning("plugin %s %s: %s", name, state, reason)

    def loaded(self) -> list[str]:
        """Names of the plugins that are loaded."""
        return [r.name for r in self.reports if r.state == LOADED]


def format_reports(reports: Iterable[PluginReport]) -> str:
    """Render plugin reports as the table ``crio plugins`` prints."""
    rows = [("NAME", "STATE", "SOURCE", "DETAILS")]
    for r in reports:
        details = (
            r.reason if r.state != LOADED else (f"hooks: {', '.join(r.hooks)}" if r.hooks else "no hooks")
        )
        rows.append(
            (r.name, r.state, f"{r.value} ({r.distribution})" if r.value else r.distribution, details)
        )
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    return "\n".join(
        f"{row[0]:<{widths[0]}}  {row[1]:<{widths[1]}}  {row[2]:<{widths[2]}}  {row[3]}".rstrip()
        for row in rows
    )
