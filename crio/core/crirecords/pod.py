"""The CRI PodSandboxConfig as a record (Windows settings are left out)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from crio.core.crirecords.common import (
    LinuxContainerResources,
    NamespaceOption,
    SecurityProfile,
    SELinuxOption,
)
from crio.core.crirecords.convert import Record

MERGE = "Merge"  # SupplementalGroupsPolicy
TCP = "TCP"  # Protocol


@dataclass(frozen=True, slots=True)
class PodSandboxMetadata(Record):
    """What identifies a pod: name, uid, namespace and attempt."""

    name: str = ""
    uid: str = ""
    namespace: str = ""
    attempt: int = 0


@dataclass(frozen=True, slots=True)
class DNSConfig(Record):
    """The pod's resolv.conf settings."""

    servers: tuple[str, ...] = ()
    searches: tuple[str, ...] = ()
    options: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class PortMapping(Record):
    """A host port forwarded to a pod port (protocol TCP, UDP or SCTP)."""

    protocol: str = TCP
    container_port: int = 0
    host_port: int = 0
    host_ip: str = ""


@dataclass(frozen=True, slots=True)
class LinuxSandboxSecurityContext(Record):
    """The pod's Linux security settings. None marks a message (or ``Int64Value``) the request left out."""

    namespace_options: NamespaceOption | None = None
    selinux_options: SELinuxOption | None = None
    run_as_user: int | None = None
    run_as_group: int | None = None
    readonly_rootfs: bool = False
    supplemental_groups: tuple[int, ...] = ()
    supplemental_groups_policy: str = MERGE
    privileged: bool = False
    seccomp: SecurityProfile | None = None
    apparmor: SecurityProfile | None = None
    seccomp_profile_path: str = ""


@dataclass(frozen=True, slots=True)
class LinuxPodSandboxConfig(Record):
    """The pod's Linux settings."""

    cgroup_parent: str = ""
    security_context: LinuxSandboxSecurityContext | None = None
    sysctls: Mapping[str, str] = field(default_factory=dict)
    overhead: LinuxContainerResources | None = None
    resources: LinuxContainerResources | None = None


_NO_SECURITY_CONTEXT = LinuxSandboxSecurityContext()
_DEFAULT_NAMESPACES = NamespaceOption()


@dataclass(frozen=True, slots=True)
class PodSandboxConfig(Record):
    """A RunPodSandbox request's config.

    ``metadata`` is an empty PodSandboxMetadata when the request has none (validation refuses both).
    """

    metadata: PodSandboxMetadata = field(default_factory=PodSandboxMetadata)
    hostname: str = ""
    log_directory: str = ""
    dns_config: DNSConfig | None = None
    port_mappings: tuple[PortMapping, ...] = ()
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)
    linux: LinuxPodSandboxConfig | None = None

    @property
    def cgroup_parent(self) -> str:
        """``linux.cgroup_parent`` ("" when absent)."""
        return self.linux.cgroup_parent if self.linux is not None else ""

    @property
    def sysctls(self) -> Mapping[str, str]:
        """``linux.sysctls`` ({} when absent)."""
        return self.linux.sysctls if self.linux is not None else {}

    @property
    def security_context(self) -> LinuxSandboxSecurityContext:
        """``linux.security_context``, or an empty one when the request has none."""
        linux = self.linux
        context = linux.security_context if linux is not None else None
        return context if context is not None else _NO_SECURITY_CONTEXT

    @property
    def namespace_options(self) -> NamespaceOption:
        """``linux.security_context.namespace_options``, or all-POD defaults when absent."""
        options = self.security_context.namespace_options
        return options if options is not None else _DEFAULT_NAMESPACES
