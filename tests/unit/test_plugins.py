"""Plugin discovery and loading rules: enable/disable lists, missing dependencies, host checks, hooks."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import pytest
from importlib_metadata import EntryPoint

from crio.core import config as configmod
from crio.core.hookspecs import hookimpl
from crio.core.plugins import DISABLED, FAILED, LOADED, SKIPPED, PluginManager, discover, format_reports
from crio.core.types import NetworkStatus

BUILT_INS = {"runc", "storage_overlay", "storage_vfs", "cni", "seccomp", "apparmor", "selinux"}


def make_config(tmp_path: Path, text: str = "") -> configmod.Config:
    conf = tmp_path / "crio.conf"
    conf.write_text(text)
    (tmp_path / "d").mkdir(exist_ok=True)
    return configmod.load(str(conf), str(tmp_path / "d"))


def module(name: str, **attrs: object) -> types.ModuleType:
    mod = types.ModuleType(name)
    for key, value in attrs.items():
        setattr(mod, key, value)
    sys.modules[name] = mod
    return mod


@hookimpl
def _ready_status() -> NetworkStatus:
    return NetworkStatus(True, "", "test network")


@hookimpl
def _unavailable(config: configmod.Config) -> str:
    return "no such hardware on this host"


def test_built_in_plugins_are_discovered_through_entry_points() -> None:
    names = {ep.name for ep in discover()}
    assert names >= BUILT_INS


def test_loading_rules(tmp_path: Path) -> None:
    module("crio_test_ready", crio_network_status=_ready_status)
    module("crio_test_unavailable", crio_plugin_unavailable=_unavailable)
    eps = [
        EntryPoint("ready", "crio_test_ready", "crio.plugins"),
        EntryPoint("unavailable", "crio_test_unavailable", "crio.plugins"),
        EntryPoint("missingdep", "crio_test_module_that_does_not_exist", "crio.plugins"),
        EntryPoint("broken", "crio_test_ready:no_such_attribute", "crio.plugins"),
        EntryPoint("off", "crio_test_ready", "crio.plugins"),
    ]
    manager = PluginManager()
    manager.load_entry_points(make_config(tmp_path, '[crio.plugins]\ndisabled = ["off"]\n'), eps)
    states = {r.name: (r.state, r.reason) for r in manager.reports}
    assert states["ready"] == (LOADED, "")
    assert states["unavailable"] == (SKIPPED, "no such hardware on this host")
    assert states["missingdep"][0] == SKIPPED
    assert "missing optional dependency crio_test_module_that_does_not_exist" in states["missingdep"][1]
    assert states["broken"][0] == FAILED
    assert states["off"] == (DISABLED, "listed in crio.plugins.disabled")
    assert manager.loaded() == ["ready"]
    assert manager.hook.crio_network_status() == NetworkStatus(True, "", "test network")
    assert manager.hook.crio_plugin_unavailable.get_hookimpls() == []  # the skipped plugin is unregistered
    table = format_reports(manager.reports)
    assert "ready" in table and "hooks: crio_network_status" in table


def test_enabled_list_limits_loading(tmp_path: Path) -> None:
    manager = PluginManager()
    manager.load_entry_points(make_config(tmp_path, '[crio.plugins]\nenabled = ["cni"]\n'))
    states = {r.name: r.state for r in manager.reports}
    assert states["cni"] == LOADED
    assert states["runc"] == DISABLED
    assert all(states[name] == DISABLED for name in BUILT_INS - {"cni"})


def test_plugin_with_wrong_hook_signature_fails(tmp_path: Path) -> None:
    @hookimpl
    def crio_network_status(unexpected: int) -> None:
        return None

    manager = PluginManager()
    loaded = manager.register(
        types.SimpleNamespace(crio_network_status=crio_network_status), "bad", make_config(tmp_path)
    )
    assert not loaded
    assert manager.reports[-1].state == FAILED


@pytest.mark.parametrize("name", sorted(BUILT_INS))
def test_every_built_in_is_accounted_for(tmp_path: Path, name: str) -> None:
    manager = PluginManager()
    manager.load_entry_points(make_config(tmp_path))
    report = next(r for r in manager.reports if r.name == name)
    assert report.state in (LOADED, SKIPPED)
    if report.state == SKIPPED:
        assert report.reason
