"""CRI records that pods and containers share: namespaces, user namespaces, SELinux, security profiles,
resources, images, key/value pairs."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from crio.core.crirecords.convert import Record

# NamespaceMode values.
POD = "POD"
CONTAINER = "CONTAINER"
NODE = "NODE"
TARGET = "TARGET"
# SecurityProfile.ProfileType values.
RUNTIME_DEFAULT = "RuntimeDefault"
UNCONFINED = "Unconfined"
LOCALHOST = "Localhost"


@dataclass(frozen=True, slots=True)
class IDMapping(Record):
    """``length`` IDs from ``container_id`` in a user namespace map to ``host_id`` outside."""

    host_id: int = 0
    container_id: int = 0
    length: int = 0


@dataclass(frozen=True, slots=True)
class UserNamespace(Record):
    """A pod's user namespace: its mode (POD or NODE) and, for POD, its ID mappings."""

    mode: str = POD
    uids: tuple[IDMapping, ...] = ()
    gids: tuple[IDMapping, ...] = ()


@dataclass(frozen=True, slots=True)
class NamespaceOption(Record):
    """Namespace modes (POD, CONTAINER, NODE, TARGET) of a pod or a container."""

    network: str = POD
    pid: str = POD
    ipc: str = POD
    target_id: str = ""
    userns_options: UserNamespace | None = None


@dataclass(frozen=True, slots=True)
class SELinuxOption(Record):
    """SELinux label fields; empty ones are left to the policy."""

    user: str = ""
    role: str = ""
    type: str = ""
    level: str = ""


@dataclass(frozen=True, slots=True)
class SecurityProfile(Record):
    """A seccomp or AppArmor profile: RuntimeDefault, Unconfined or Localhost (with ``localhost_ref``)."""

    profile_type: str = RUNTIME_DEFAULT
    localhost_ref: str = ""


@dataclass(frozen=True, slots=True)
class HugepageLimit(Record):
    """A hugetlb limit for one page size ("2MB", "1GB")."""

    page_size: str = ""
    limit: int = 0


@dataclass(frozen=True, slots=True)
class LinuxContainerResources(Record):
    """Cgroup limits of a container (CreateContainer, UpdateContainerResources) or of a pod."""

    cpu_period: int = 0
    cpu_quota: int = 0
    cpu_shares: int = 0
    memory_limit_in_bytes: int = 0
    oom_score_adj: int = 0
    cpuset_cpus: str = ""
    cpuset_mems: str = ""
    hugepage_limits: tuple[HugepageLimit, ...] = ()
    unified: Mapping[str, str] = field(default_factory=dict)
    memory_swap_limit_in_bytes: int = 0


@dataclass(frozen=True, slots=True)
class ImageSpec(Record):
    """An image reference as the request names it."""

    image: str = ""
    annotations: Mapping[str, str] = field(default_factory=dict)
    user_specified_image: str = ""
    runtime_handler: str = ""
    image_ref: str = ""


@dataclass(frozen=True, slots=True)
class KeyValue(Record):
    """An environment variable; the value is bytes on the wire."""

    key: str = ""
    value: bytes = b""
