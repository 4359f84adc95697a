"""The runc plugin's hooks: registered against the specs, and silent for runtime types it does not drive."""

from __future__ import annotations

import asyncio
from pathlib import Path

from crio.core.plugins import PluginManager
from crio.core.types import ContainerBundle, RuntimeHandler
from crio.plugins import runc

OTHER = RuntimeHandler(name="kata", runtime_path="/bin/true", runtime_type="vm")
CONTAINER = ContainerBundle(
    id="c", name="n", pod_id="p", bundle=Path("/nonexistent"), exit_dir=Path("/x"), attach_dir=Path("/y")
)


def test_plugin_validates_against_the_hookspecs() -> None:
    manager = PluginManager()
    manager.pm.register(runc, name="runc")
    manager.pm.check_pending()
    names = {caller.name for caller in manager.pm.get_hookcallers(runc) or []}
    assert {"crio_runtime_create", "crio_runtime_wait", "crio_runtime_exec_sync", "crio_shutdown"} <= names


def test_other_runtime_types_get_none() -> None:
    hook = PluginManager()
    hook.pm.register(runc, name="runc")
    calls = hook.hook
    assert calls.crio_runtime_create(handler=OTHER, container=CONTAINER) is None
    assert calls.crio_runtime_start(handler=OTHER, container=CONTAINER) is None
    assert calls.crio_runtime_kill(handler=OTHER, container=CONTAINER, signal=15, all_processes=False) is None
    assert calls.crio_runtime_delete(handler=OTHER, container=CONTAINER, force=True) is None
    assert calls.crio_runtime_state(handler=OTHER, container=CONTAINER) is None
    assert calls.crio_runtime_wait(handler=OTHER, container=CONTAINER) is None
    assert calls.crio_runtime_update(handler=OTHER, container=CONTAINER, resources={}) is None
    assert calls.crio_runtime_reopen_log(handler=OTHER, container=CONTAINER) is None
    assert calls.crio_runtime_list(handler=OTHER) is None
    assert (
        calls.crio_runtime_exec_sync(
            handler=OTHER, container=CONTAINER, command=["true"], timeout=1.0, output_limit=10
        )
        is None
    )
    assert calls.crio_runtime_features(handler=OTHER) is None


def test_create_refuses_a_handler_without_monitor(tmp_path: Path) -> None:
    handler = RuntimeHandler(name="runc", runtime_path="/usr/sbin/runc")
    awaitable = runc.crio_runtime_create(handler=handler, container=CONTAINER)
    assert awaitable is not None

    async def main() -> str:
        try:
            await awaitable
        except Exception as exc:
            return f"{type(exc).__name__}: {exc}"
        return "no error"

    assert asyncio.run(main()).startswith("InvalidArgument: runtime handler 'runc' has no monitor")
