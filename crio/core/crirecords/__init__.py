"""Typed records of the CRI v1 messages the core consumes, built once at the gRPC boundary.

The servicers turn each request's config into a record with ``Record.from_message`` (reading the protobuf
objects directly); from there on the core reads attributes, never a dict. Records are frozen dataclasses
named after their ``runtime.v1`` message, with the proto field names; see :mod:`.convert` for the typing
rules (enums as value names, ``None`` for an absent message or ``Int64Value``) and for the dict form.

Persistence: pods and containers keep their config in ``sandbox.json`` / ``container.json`` as
``Record.to_dict()``, which is what ``MessageToDict(..., preserving_proto_field_name=True)`` wrote before
records existed; ``Record.from_dict`` reads both, so a daemon upgraded over running pods restores them.
"""

from __future__ import annotations

from crio.core.crirecords.common import (
    CONTAINER,
    LOCALHOST,
    NODE,
    POD,
    RUNTIME_DEFAULT,
    TARGET,
    UNCONFINED,
    HugepageLimit,
    IDMapping,
    ImageSpec,
    KeyValue,
    LinuxContainerResources,
    NamespaceOption,
    SecurityProfile,
    SELinuxOption,
    UserNamespace,
)
from crio.core.crirecords.container import (
    Capability,
    CDIDevice,
    ContainerConfig,
    ContainerMetadata,
    Device,
    LinuxContainerConfig,
    LinuxContainerSecurityContext,
    Mount,
)
from crio.core.crirecords.convert import Record, RecordError
from crio.core.crirecords.pod import (
    DNSConfig,
    LinuxPodSandboxConfig,
    LinuxSandboxSecurityContext,
    PodSandboxConfig,
    PodSandboxMetadata,
    PortMapping,
)

# Every record type, by its message name.
RECORDS: dict[str, type[Record]] = {
    cls.__name__: cls
    for cls in (
        Capability,
        CDIDevice,
        ContainerConfig,
        ContainerMetadata,
        Device,
        DNSConfig,
        HugepageLimit,
        IDMapping,
        ImageSpec,
        KeyValue,
        LinuxContainerConfig,
        LinuxContainerResources,
        LinuxContainerSecurityContext,
        LinuxPodSandboxConfig,
        LinuxSandboxSecurityContext,
        Mount,
        NamespaceOption,
        PodSandboxConfig,
        PodSandboxMetadata,
        PortMapping,
        SecurityProfile,
        SELinuxOption,
        UserNamespace,
    )
}

__all__ = [
    "CONTAINER",
    "LOCALHOST",
    "NODE",
    "POD",
    "RECORDS",
    "RUNTIME_DEFAULT",
    "TARGET",
    "UNCONFINED",
    "CDIDevice",
    "Capability",
    "ContainerConfig",
    "ContainerMetadata",
    "DNSConfig",
    "Device",
    "HugepageLimit",
    "IDMapping",
    "ImageSpec",
    "KeyValue",
    "LinuxContainerConfig",
    "LinuxContainerResources",
    "LinuxContainerSecurityContext",
    "LinuxPodSandboxConfig",
    "LinuxSandboxSecurityContext",
    "Mount",
    "NamespaceOption",
    "PodSandboxConfig",
    "PodSandboxMetadata",
    "PortMapping",
    "Record",
    "RecordError",
    "SELinuxOption",
    "SecurityProfile",
    "UserNamespace",
]
