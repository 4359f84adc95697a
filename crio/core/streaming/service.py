"""The streaming service: prepares Exec, Attach and PortForward requests (returning their URLs) and opens
them when the client connects, through the runtime handler's ``crio_runtime_exec``/``crio_runtime_attach``.

The RPCs check the request and the container's (or pod's) state at once, so a client learns about a bad
request from the RPC's status; the state is checked again when the URL is used, since a container may have
stopped in between.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from crio.core.config import Config
from crio.core.containers.manager import ContainerManager
from crio.core.containers.model import RUNNING, Container
from crio.core.errors import FailedPrecondition, InvalidArgument
from crio.core.runtime_calls import RuntimeCalls
from crio.core.sandbox.manager import SandboxManager
from crio.core.sandbox.model import READY
from crio.core.streaming import tokens
from crio.core.streaming.server import StreamServer, parse_duration
from crio.core.types import StdioSession

log = logging.getLogger(__name__)

DEFAULT_IDLE_TIMEOUT = 4 * 3600.0  # the kubelet streaming server's default


def idle_timeout(config: Config) -> float:
    """``crio.api.stream_idle_timeout`` in seconds ("" → 4 h, like the kubelet; "0" → none)."""
    key = "crio.api.stream_idle_timeout"
    text = str(config.get(key)).strip()
    if not text:
        return DEFAULT_IDLE_TIMEOUT
    try:
        return parse_duration(text)
    except ValueError:
        raise InvalidArgument(f"{config.source(key)}: {key}: invalid duration {text!r}") from None


def stream_port(config: Config) -> str:
    """``crio.api.stream_port``, checked to be a TCP port number (0: any free one)."""
    key = "crio.api.stream_port"
    text = str(config.get(key)).strip() or "0"
    if not text.isdigit() or int(text) > 65535:
        raise InvalidArgument(f"{config.source(key)}: {key}: {text!r} is not a port number")
    return text


def check_config(config: Config) -> None:
    """Refuse unusable streaming settings before the daemon starts (InvalidArgument naming the key)."""
    idle_timeout(config)
    stream_port(config)


def _check_streams(what: str, tty: bool, stdin: bool, stdout: bool, stderr: bool) -> None:
    if tty and stderr:
        raise InvalidArgument(f"{what}: tty and stderr cannot both be true")
    if not (stdin or stdout or stderr):
        raise InvalidArgument(f"{what}: one of stdin, stdout, or stderr must be set")


class StreamingService:
    """Owns the streaming server and its tokens."""

    def __init__(
        self, config: Config, containers: ContainerManager, pods: SandboxManager, runtime: RuntimeCalls
    ) -> None:
        self.containers = containers
        self.pods = pods
        self.runtime = runtime
        self.tokens = tokens.TokenCache()
        self.server = StreamServer(
            self,
            str(config.get("crio.api.stream_address")),
            stream_port(config),
            idle_timeout(config),
        )

    async def start(self) -> None:
        """Start listening."""
        await self.server.start()

    async def stop(self) -> None:
        """Stop listening and end every streaming connection."""
        await self.server.stop()

    # ------------------------------------------------------------------------------------ the RPCs' side

    def _running(self, container_id: str) -> Container:
        container = self.containers.get(container_id)
        if container.state != RUNNING:
            raise FailedPrecondition(f"container {container.id} is {container.state}, not running")
        return container

    def prepare_exec(
        self, container_id: str, command: Sequence[str], tty: bool, stdin: bool, stdout: bool, stderr: bool
    ) -> str:
        """Check an Exec request; return the URL that runs it."""
        if not command:
            raise InvalidArgument("Exec: cmd is empty")
        _check_streams("Exec", tty, stdin, stdout, stderr)
        container = self._running(container_id)
        request = tokens.StreamRequest(tokens.EXEC, container.id, tuple(command), tty, stdin, stdout, stderr)
        return self.server.url(tokens.EXEC, self.tokens.insert(request))

    def prepare_attach(self, container_id: str, tty: bool, stdin: bool, stdout: bool, stderr: bool) -> str:
        """Check an Attach request; return the URL that attaches."""
        _check_streams("Attach", tty, stdin, stdout, stderr)
        container = self._running(container_id)
        request = tokens.StreamRequest(tokens.ATTACH, container.id, (), tty, stdin, stdout, stderr)
        return self.server.url(tokens.ATTACH, self.tokens.insert(request))

    def prepare_port_forward(self, pod_id: str, ports: Sequence[int]) -> str:
        """Check a PortForward request; return the URL that forwards."""
        pod = self.pods.get(pod_id)
        if pod.state != READY:
            raise FailedPrecondition(f"pod sandbox {pod.id} is not ready")
        request = tokens.StreamRequest(tokens.PORTFORWARD, pod.id, ports=tuple(ports))
        return self.server.url(tokens.PORTFORWARD, self.tokens.insert(request))

    # ---------------------------------------------------------------------------------- the server's side

    async def open_exec(self, request: tokens.StreamRequest) -> StdioSession:
        """Start the command of an exec request in its container."""
        container = self._running(request.target)
        bundle = await self.containers.bundle_of(container)
        return await self.runtime.exec(
            container.runtime_handler,
            bundle,
            request.command,
            request.tty,
            request.stdin,
            request.stdout,
            request.stderr,
        )

    async def open_attach(self, request: tokens.StreamRequest) -> tuple[StdioSession, bool]:
        """Attach to the container; also whether the attach ends when the client's stdin does."""
        container = self._running(request.target)
        bundle = await self.containers.bundle_of(container)
        session = await self.runtime.attach(
            container.runtime_handler, bundle, request.stdin, request.stdout, request.stderr
        )
        return session, not bundle.stdin_once and not bundle.terminal

    def pod_network(self, request: tokens.StreamRequest) -> str:
        """The pod's pinned network namespace ("" for a host-network pod)."""
        pod = self.pods.get(request.target)
        if pod.state != READY:
            raise FailedPrecondition(f"pod sandbox {pod.id} is not ready")
        return pod.netns_path
