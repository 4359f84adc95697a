"""The CRI ContainerConfig as a record (Windows settings are left out)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from crio.core.crirecords.common import (
    IDMapping,
    ImageSpec,
    KeyValue,
    LinuxContainerResources,
    NamespaceOption,
    SecurityProfile,
    SELinuxOption,
)
from crio.core.crirecords.convert import Record

PRIVATE = "PROPAGATION_PRIVATE"  # MountPropagation
MERGE = "Merge"  # SupplementalGroupsPolicy
RUNTIME_DEFAULT_SIGNAL = "SIGNAL_RUNTIME_DEFAULT"  # Signal


@dataclass(frozen=True, slots=True)
class ContainerMetadata(Record):
    """What identifies a container in its pod: name and attempt."""

    name: str = ""
    attempt: int = 0


@dataclass(frozen=True, slots=True)
class Mount(Record):
    """A bind mount of a host path, or (``image`` set) an image volume."""

    container_path: str = ""
    host_path: str = ""
    readonly: bool = False
    selinux_relabel: bool = False
    propagation: str = PRIVATE
    uidMappings: tuple[IDMapping, ...] = ()
    gidMappings: tuple[IDMapping, ...] = ()
    recursive_read_only: bool = False
    image: ImageSpec | None = None
    image_sub_path: str = ""
    mount_options: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Device(Record):
    """A host device made available in the container."""

    container_path: str = ""
    host_path: str = ""
    permissions: str = ""


@dataclass(frozen=True, slots=True)
class Capability(Record):
    """Capabilities to add to or drop from the defaults ("ALL" is allowed in both)."""

    add_capabilities: tuple[str, ...] = ()
    drop_capabilities: tuple[str, ...] = ()
    add_ambient_capabilities: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class LinuxContainerSecurityContext(Record):
    """The container's Linux security settings. None marks a message (or ``Int64Value``) the request left
    out."""

    capabilities: Capability | None = None
    privileged: bool = False
    namespace_options: NamespaceOption | None = None
    selinux_options: SELinuxOption | None = None
    run_as_user: int | None = None
    run_as_group: int | None = None
    run_as_username: str = ""
    readonly_rootfs: bool = False
    supplemental_groups: tuple[int, ...] = ()
    supplemental_groups_policy: str = MERGE
    no_new_privs: bool = False
    masked_paths: tuple[str, ...] = ()
    readonly_paths: tuple[str, ...] = ()
    seccomp: SecurityProfile | None = None
    apparmor: SecurityProfile | None = None
    apparmor_profile: str = ""
    seccomp_profile_path: str = ""


@dataclass(frozen=True, slots=True)
class LinuxContainerConfig(Record):
    """The container's Linux settings."""

    resources: LinuxContainerResources | None = None
    security_context: LinuxContainerSecurityContext | None = None


@dataclass(frozen=True, slots=True)
class CDIDevice(Record):
    """A CDI device by its fully qualified name."""

    name: str = ""


_NO_SECURITY_CONTEXT = LinuxContainerSecurityContext()
_DEFAULT_NAMESPACES = NamespaceOption()


@dataclass(frozen=True, slots=True)
class ContainerConfig(Record):
    """A CreateContainer request's config.

    ``metadata`` and ``image`` are empty records when the request has none (validation refuses both).
    """

    metadata: ContainerMetadata = field(default_factory=ContainerMetadata)
    image: ImageSpec = field(default_factory=ImageSpec)
    command: tuple[str, ...] = ()
    args: tuple[str, ...] = ()
    working_dir: str = ""
    envs: tuple[KeyValue, ...] = ()
    mounts: tuple[Mount, ...] = ()
    devices: tuple[Device, ...] = ()
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)
    log_path: str = ""
    stdin: bool = False
    stdin_once: bool = False
    tty: bool = False
    linux: LinuxContainerConfig | None = None
    CDI_devices: tuple[CDIDevice, ...] = ()
    stop_signal: str = RUNTIME_DEFAULT_SIGNAL

    @property
    def resources(self) -> LinuxContainerResources | None:
        """``linux.resources``; None when the request has none."""
        return self.linux.resources if self.linux is not None else None

    def with_resources(self, resources: LinuxContainerResources) -> ContainerConfig:
        """A copy with ``linux.resources`` replaced (UpdateContainerResources)."""
        linux = self.linux if self.linux is not None else LinuxContainerConfig()
        return replace(self, linux=replace(linux, resources=resources))

    @property
    def security_context(self) -> LinuxContainerSecurityContext:
        """``linux.security_context``, or an empty one when the request has none."""
        linux = self.linux
        context = linux.security_context if linux is not None else None
        return context if context is not None else _NO_SECURITY_CONTEXT

    @property
    def namespace_options(self) -> NamespaceOption:
        """``linux.security_context.namespace_options``, or all-POD defaults when absent."""
        options = self.security_context.namespace_options
        return options if options is not None else _DEFAULT_NAMESPACES
