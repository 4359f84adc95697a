"""Plain data types shared by the core and the plugins through the hook specifications.

Plugins see these types and ``crio.core.hookspecs`` only: never the gRPC layer, never another plugin.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class RuntimeHandler:
    """One ``[crio.runtime.runtimes.NAME]`` table: an OCI runtime the CRI RuntimeHandler field can select.

    ``runtime_type`` says which plugin drives it ("oci": a runc-compatible CLI under conmon).
    """

    name: str
    runtime_path: str
    runtime_type: str = "oci"
    runtime_root: str = ""
    monitor_path: str = ""
    monitor_env: tuple[str, ...] = ()
    allowed_annotations: tuple[str, ...] = ()
    container_create_timeout: int = 240


@dataclass(frozen=True)
class RuntimeFeatures:
    """What a runtime handler supports, as reported in StatusResponse.runtime_handlers."""

    recursive_read_only_mounts: bool = False
    user_namespaces: bool = False
    details: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ContainerBundle:
    """Everything a runtime handler needs to act on one container.

    ``bundle`` is the ContainerRunDirectory holding the OCI ``config.json``; ``pid_file`` and ``exit_file``
    are where the monitor records the container's pid and exit status.
    """

    id: str
    pod_id: str
    bundle: Path
    pid_file: Path
    exit_file: Path
    log_path: str = ""
    terminal: bool = False
    stdin: bool = False
    stdin_once: bool = False
    cgroup_parent: str = ""


@dataclass(frozen=True)
class ContainerRuntimeState:
    """A runtime's view of a container: OCI status ("created", "running", "stopped", "paused"), pid."""

    status: str
    pid: int = 0
    exit_code: int | None = None


@dataclass(frozen=True)
class ExecResult:
    """Outcome of a synchronous exec: exit code and captured output."""

    exit_code: int
    stdout: bytes = b""
    stderr: bytes = b""


@dataclass(frozen=True)
class StorageContext:
    """Where a storage driver keeps its data: the containers/storage graph root and run root, and options."""

    driver: str
    graphroot: Path
    runroot: Path
    options: tuple[str, ...] = ()


@dataclass(frozen=True)
class NetworkStatus:
    """Readiness of pod networking, reported as the CRI NetworkReady condition."""

    ready: bool
    reason: str = ""
    message: str = ""


@dataclass(frozen=True)
class PodNetworkRequest:
    """What a network manager needs to attach or detach a pod."""

    pod_id: str
    name: str
    namespace: str
    uid: str
    netns_path: str
    port_mappings: Sequence[Mapping[str, Any]] = ()
    dns: Mapping[str, Any] = field(default_factory=dict)
    cgroup_parent: str = ""


@dataclass(frozen=True)
class PodNetworkResult:
    """Addresses a network manager gave a pod (first is the primary pod IP)."""

    ips: tuple[str, ...] = ()
    details: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ImageReference:
    """A parsed transport reference, e.g. transport "docker" and name "registry.k8s.io/pause:3.10"."""

    transport: str
    name: str


@dataclass(frozen=True)
class SecurityRequest:
    """The security-relevant part of a pod or container request handed to security plugins.

    ``kind`` is "pod" or "container"; ``security_context`` is the CRI security context as a plain dict
    (protobuf JSON names); ``annotations`` are the request's annotations.
    """

    kind: str
    name: str
    security_context: Mapping[str, Any] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)
    privileged: bool = False
