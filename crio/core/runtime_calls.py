"""The core's side of the runtime-handler hooks: pick the handler, call the plugin, stop with a timeout."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from crio.core.config import Config
from crio.core.errors import InvalidArgument, NotFound, Unavailable, Unimplemented
from crio.core.plugins import PluginManager
from crio.core.types import (
    ContainerBundle,
    ContainerRuntimeState,
    ExecResult,
    RuntimeContainer,
    RuntimeHandler,
    StdioSession,
)

log = logging.getLogger(__name__)

# The cgroup every container monitor (conmon) runs in: never the container's or the pod's own.
MONITOR_CGROUP = "/crio-monitors"
# Polling back-off used only when the handler offers no exit notification.
_POLL_START, _POLL_MAX = 0.01, 0.25


class RuntimeCalls:
    """Routes container operations to the plugin that drives each runtime handler."""

    def __init__(self, config: Config, plugins: PluginManager) -> None:
        self.config = config
        self.plugins = plugins

    def handler(self, name: str) -> RuntimeHandler:
        """The handler a CRI RuntimeHandler names ("" = the default runtime)."""
        handlers = self.config.runtime_handlers()
        wanted = name or self.config.default_runtime
        found = handlers.get(wanted)
        if found is None:
            raise InvalidArgument(
                f"runtime handler {name!r} is not configured (known: {', '.join(sorted(handlers))})"
            )
        return found

    def bundle(
        self, id: str, name: str, pod_id: str, rundir: Path, log_path: str = "", **stdio: bool
    ) -> ContainerBundle:
        """Describe a container to its runtime handler: the monitor's exit and attach directories come from
        the config, the monitor cgroup is the shared one; ``stdio`` sets terminal/stdin/stdin_once."""
        return ContainerBundle(
            id=id,
            name=name,
            pod_id=pod_id,
            bundle=rundir,
            exit_dir=Path(str(self.config.get("crio.runtime.container_exits_dir"))),
            attach_dir=Path(str(self.config.get("crio.runtime.container_attach_socket_dir"))),
            log_path=log_path,
            monitor_cgroup=MONITOR_CGROUP,
            **stdio,
        )

    async def _call(self, hook: str, name: str, **kwargs: Any) -> Any:
        handler = self.handler(name)
        pending = getattr(self.plugins.hook, hook)(handler=handler, **kwargs)
        if pending is None:
            raise Unimplemented(
                f"no loaded plugin implements {hook} for runtime type {handler.runtime_type!r}"
            )
        return await pending

    async def create(self, name: str, container: ContainerBundle) -> ContainerRuntimeState:
        """Create the container under its monitor; returns its state with the pid."""
        state: ContainerRuntimeState = await self._call("crio_runtime_create", name, container=container)
        return state

    async def start(self, name: str, container: ContainerBundle) -> None:
        """Start a created container."""
        await self._call("crio_runtime_start", name, container=container)

    async def state(self, name: str, container: ContainerBundle) -> ContainerRuntimeState:
        """The runtime's view of the container ("stopped" when the runtime no longer knows it)."""
        try:
            state: ContainerRuntimeState = await self._call("crio_runtime_state", name, container=container)
        except NotFound:
            return ContainerRuntimeState("stopped")
        return state

    async def kill(
        self, name: str, container: ContainerBundle, signum: int, all_processes: bool = False
    ) -> None:
        """Send ``signum`` to the container."""
        await self._call(
            "crio_runtime_kill", name, container=container, signal=signum, all_processes=all_processes
        )

    async def wait(
        self, name: str, container: ContainerBundle, timeout: float
    ) -> ContainerRuntimeState | None:
        """Wait until the container stops, at most ``timeout`` seconds; None on timeout.

        When the handler reports that the container's monitor is gone without recording an exit (Unavailable:
        nobody will notify), the runtime's own state is polled instead, so a container whose monitor died
        can still be stopped and removed.
        """
        handler = self.handler(name)
        deadline = asyncio.get_running_loop().time() + timeout
        hook = getattr(self.plugins.hook, "crio_runtime_wait", None)
        pending = hook(handler=handler, container=container) if hook is not None else None
        if pending is not None:
            try:
                result: ContainerRuntimeState = await asyncio.wait_for(pending, timeout)
                return result
            except TimeoutError:
                return None
            except Unavailable as exc:
                log.warning("%s; asking the runtime for its state instead", exc)
        delay = _POLL_START
        while True:
            state = await self.state(name, container)
            if state.status == "stopped":
                return state
            if asyncio.get_running_loop().time() >= deadline:
                return None
            await asyncio.sleep(delay)
            delay = min(delay * 2, _POLL_MAX)

    async def stop(
        self, name: str, container: ContainerBundle, timeout: float, stop_signal: int = signal.SIGTERM
    ) -> ContainerRuntimeState:
        """Stop a container: ``stop_signal``, then SIGKILL after ``timeout`` s; a stopped one is fine.

        Killing a stopped container succeeds and waiting for it returns its recorded exit at once, so no
        state query is needed first.
        """
        if timeout > 0:
            await self.kill(name, container, stop_signal)
            stopped = await self.wait(name, container, timeout)
            if stopped is not None:
                return stopped
        await self.kill(name, container, signal.SIGKILL, all_processes=True)
        stopped = await self.wait(name, container, 30)
        if stopped is None:
            log.error("container %s did not stop after SIGKILL", container.id)
            return await self.state(name, container)
        return stopped

    async def update(self, name: str, container: ContainerBundle, resources: Mapping[str, Any]) -> None:
        """Apply new OCI ``linux.resources`` to the container."""
        await self._call("crio_runtime_update", name, container=container, resources=resources)

    async def exec_sync(
        self, name: str, container: ContainerBundle, command: Sequence[str], timeout: float, limit: int
    ) -> ExecResult:
        """Run ``command`` in the container and collect its output (each stream capped at ``limit``)."""
        result: ExecResult = await self._call(
            "crio_runtime_exec_sync",
            name,
            container=container,
            command=command,
            timeout=timeout,
            output_limit=limit,
        )
        return result

    async def exec(
        self,
        name: str,
        container: ContainerBundle,
        command: Sequence[str],
        tty: bool,
        stdin: bool,
        stdout: bool,
        stderr: bool,
    ) -> StdioSession:
        """Start ``command`` in the container with its stdio relayed (streaming Exec)."""
        session: StdioSession = await self._call(
            "crio_runtime_exec",
            name,
            container=container,
            command=command,
            tty=tty,
            stdin=stdin,
            stdout=stdout,
            stderr=stderr,
        )
        return session

    async def attach(
        self, name: str, container: ContainerBundle, stdin: bool, stdout: bool, stderr: bool
    ) -> StdioSession:
        """Attach to the container's own stdio through its monitor (streaming Attach)."""
        session: StdioSession = await self._call(
            "crio_runtime_attach", name, container=container, stdin=stdin, stdout=stdout, stderr=stderr
        )
        return session

    async def reopen_log(self, name: str, container: ContainerBundle) -> None:
        """Make the container's monitor reopen its log file."""
        await self._call("crio_runtime_reopen_log", name, container=container)

    async def list_all(self, name: str) -> list[RuntimeContainer] | None:
        """Every container in the handler's runtime state directory, whoever created it; ``None`` when no
        loaded plugin can list the handler's runtime type."""
        pending = self.plugins.hook.crio_runtime_list(handler=self.handler(name))
        if pending is None:
            return None
        return list(await pending)

    async def destroy(self, name: str, container: ContainerBundle) -> None:
        """Delete the runtime's state of the container, killing it first if it still runs (``--force``)."""
        await self._call("crio_runtime_delete", name, container=container, force=True)
