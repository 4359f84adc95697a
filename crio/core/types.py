"""Plain data types shared by the core and the plugins through the hook specifications.

Plugins see these types and ``crio.core.hookspecs`` only: never the gRPC layer, never another plugin.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol


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
    """Everything a runtime handler needs to act on one container (or a pod's infra container).

    ``bundle`` is the ContainerRunDirectory holding the OCI ``config.json``; the handler keeps its own files
    there too (the container pid file ``pidfile``, the monitor's ``conmon-pidfile``). The monitor writes the
    exit code to ``exit_dir / id`` when the container exits and creates its attach socket under
    ``attach_dir``. ``log_path`` is the CRI log file ("" discards output). ``monitor_cgroup`` is the cgroupfs
    path (relative to the cgroup root) the monitor is moved into; it never shares the container's cgroup.
    """

    id: str
    name: str
    pod_id: str
    bundle: Path
    exit_dir: Path
    attach_dir: Path
    log_path: str = ""
    terminal: bool = False
    stdin: bool = False
    stdin_once: bool = False
    monitor_cgroup: str = ""

    @property
    def pid_file(self) -> Path:
        """Where the runtime writes the container's init pid."""
        return self.bundle / "pidfile"

    @property
    def exit_file(self) -> Path:
        """Where the monitor writes the exit code."""
        return self.exit_dir / self.id


@dataclass(frozen=True)
class ContainerRuntimeState:
    """A runtime's view of a container: OCI status ("created", "running", "stopped", "paused") and pid.

    ``exit_code`` and ``finished_at`` (ns since the epoch) come from the monitor's exit file once stopped;
    ``oom_killed`` says the kernel's OOM killer ended it.
    """

    status: str
    pid: int = 0
    exit_code: int | None = None
    finished_at: int = 0
    oom_killed: bool = False


@dataclass(frozen=True)
class RuntimeContainer:
    """One container in a runtime handler's state directory, as ``crio_runtime_list`` reports it.

    Whoever created it (this daemon, another crio, podman): the caller decides what is its own, by
    ``bundle`` (the directory the container was created from) and ``annotations`` (its OCI annotations).
    ``status`` is the OCI status ("created", "running", "stopped", "paused"); ``cgroup_paths`` are the
    absolute cgroupfs directories the runtime made for it, when the runtime's state says so (else empty).
    """

    id: str
    status: str
    pid: int = 0
    bundle: str = ""
    annotations: Mapping[str, str] = field(default_factory=dict)
    cgroup_paths: tuple[str, ...] = ()


@dataclass(frozen=True)
class ExecResult:
    """Outcome of a synchronous exec: exit code and captured output."""

    exit_code: int
    stdout: bytes = b""
    stderr: bytes = b""


# Which output a :meth:`StdioSession.read` chunk came from (the POSIX descriptor numbers); 0: all ended.
STDOUT = 1
STDERR = 2


class StdioSession(Protocol):
    """The standard streams of a process relayed to a streaming client: an exec'd command or an attach.

    A runtime plugin returns one from ``crio_runtime_exec`` / ``crio_runtime_attach``; the streaming server
    relays it and calls :meth:`close` exactly once at the end. Reads and writes apply backpressure: the
    server reads only as fast as its client takes the output, so a plugin never buffers without bound.
    With a terminal there is one output, reported as :data:`STDOUT`.
    """

    async def read(self) -> tuple[int, bytes]:
        """The next chunk of output as ``(STDOUT or STDERR, data)``; ``(0, b"")`` once every output ended."""
        ...

    async def write(self, data: bytes) -> None:
        """Write to the process's stdin (waits while its pipe or terminal is full)."""
        ...

    async def close_stdin(self) -> None:
        """Signal end of input (a no-op with a terminal or without stdin)."""
        ...

    def resize(self, width: int, height: int) -> None:
        """Set the terminal size in columns and rows (ignored without a terminal)."""
        ...

    async def wait(self) -> int | None:
        """The exec'd command's exit code once it exited; ``None`` for an attach (nothing to wait for)."""
        ...

    async def close(self) -> None:
        """Release everything; an exec'd command still running is killed with its process group."""
        ...


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
    """A transport reference.

    Transport "docker" with a normalized name ("registry.k8s.io/pause:3.10"); "oci" with "/layout/dir:tag";
    "oci-archive" and "docker-archive" with "/path/file.tar[:reference]".
    """

    transport: str
    name: str


@dataclass(frozen=True)
class RegistryAuth:
    """Credentials for one registry: basic (username/password), a pre-encoded ``auth``, or tokens."""

    username: str = ""
    password: str = ""
    auth: str = ""  # base64("user:password"), as in auth.json and the CRI AuthConfig
    identity_token: str = ""  # an OAuth2 refresh token
    registry_token: str = ""  # a bearer token sent as is


@dataclass(frozen=True)
class PullOptions:
    """What a transport needs besides the reference.

    ``auth``: credentials from the request (they win); ``auth_file``: an auth.json to consult otherwise;
    ``registries_conf``: the containers-registries.conf path for prefix → location remaps and ``insecure``;
    ``timeout``: seconds left of the client's deadline (None: no deadline); ``registries_conf_dir``: its
    drop-in directory (re-read when changed if ``registries_auto_reload``); ``registries_d``: the
    containers-registries.d directory (where signatures live).
    """

    auth: RegistryAuth | None = None
    auth_file: str = ""
    registries_conf: str = ""
    timeout: float | None = None
    registries_conf_dir: str = ""
    registries_d: str = ""
    registries_auto_reload: bool = True


class ImageSource(Protocol):
    """An opened image: its manifests and blobs, raw. The core verifies every digest and size."""

    @property
    def description(self) -> str:
        """Where the image actually comes from (e.g. the mirror URL), for logs and errors only."""
        ...

    async def get_manifest(self, digest: str | None = None) -> tuple[bytes, str]:
        """Return the raw manifest bytes and their media type.

        ``digest`` None: the manifest (or index/list) the reference names by tag or digest; otherwise the
        manifest with that digest in the same repository. Raises NotFound / InvalidArgument (over 4 MiB,
        schema 1) / Unavailable (server errors).
        """
        ...

    def get_blob(self, digest: str, size: int) -> AsyncIterator[bytes]:
        """Stream a blob's raw bytes (``size`` -1 when unknown)."""
        ...

    # Optional: ``async def get_signatures(self, manifest_digest: str, sigstore: bool)``
    # ``-> Sequence[Signature]`` returns the signatures of a manifest (crio.core.images.trust.signature).
    # A source without it has none; the signature policy then decides whether unsigned is acceptable.

    async def close(self) -> None:
        """Release connections and temporary files."""
        ...


@dataclass(frozen=True)
class SecurityRequest:
    """The security-relevant part of a pod or container request handed to security plugins.

    ``kind`` is "pod" or "container"; ``security_context`` is the CRI security context as a plain dict in
    ``json_format.MessageToDict(..., preserving_proto_field_name=True)`` form (proto field names, enum
    names, int64 as strings, defaults and absent messages left out; built by :mod:`crio.core.security` from
    the core's typed records); ``annotations`` are the request's annotations. ``pod_id`` is the pod's ID (a
    container's pod, or the pod itself). For a container, ``pod_security_context`` is its pod's security
    context and ``pod_spec`` the OCI spec of the pod's infra container (what the plugins set on the pod, e.g.
    its SELinux label, which the pod's containers share). :mod:`crio.core.security_profiles` reads the
    profile fields.
    """

    kind: str
    name: str
    security_context: Mapping[str, Any] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)
    privileged: bool = False
    pod_id: str = ""
    pod_security_context: Mapping[str, Any] = field(default_factory=dict)
    pod_spec: Mapping[str, Any] = field(default_factory=dict)
