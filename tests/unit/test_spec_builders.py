"""Builders shared by the tests of crio.core.spec (no tests here): CRI messages as the core's records."""

from __future__ import annotations

from typing import Any

from google.protobuf.message import Message

from crio.core import crirecords as cri
from crio.core.api import api_pb2 as api
from crio.core.spec.container import ContainerSpecInput

PASSWD = """\
root:x:0:0:root:/root:/bin/sh
# a comment
daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin
www-data:x:33:33:www-data:/var/www:/usr/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin
user1000:x:1000:1000::/home/user1000:/bin/sh
nohome:x:1001:1001::
"""
GROUP = """\
root:x:0:
daemon:x:1:
www-data:x:33:
users:x:100:www-data,user1000
extra:x:50000:user1000
nogroup:x:65534:
g1004:x:1004:
"""
BOUNDING = ("CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_KILL", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_SYS_ADMIN")
DEFAULT_CAPS = ("CHOWN", "DAC_OVERRIDE", "KILL", "NET_RAW")


def record(message: Message) -> Any:
    """A CRI message as the gRPC layer hands it to the core: its record."""
    return cri.RECORDS[message.DESCRIPTOR.name].from_message(message)


def container_config(**fields: Any) -> cri.ContainerConfig:
    """A ContainerConfig record: a busybox container "ctr" plus ``fields`` (protobuf keyword arguments)."""
    fields.setdefault("metadata", api.ContainerMetadata(name="ctr"))
    fields.setdefault("image", api.ImageSpec(image="busybox:1.29-2"))
    return cri.ContainerConfig.from_message(api.ContainerConfig(**fields))


def linux(**security: Any) -> api.LinuxContainerConfig:
    """A LinuxContainerConfig whose security context has ``security`` (protobuf keyword arguments)."""
    return api.LinuxContainerConfig(security_context=api.LinuxContainerSecurityContext(**security))


def pod_config(**security: Any) -> cri.PodSandboxConfig:
    """A PodSandboxConfig record with pod security context ``security``."""
    return cri.PodSandboxConfig.from_message(
        api.PodSandboxConfig(
            metadata=api.PodSandboxMetadata(name="pod", namespace="ns", uid="uid-1"),
            hostname="podhost",
            linux=api.LinuxPodSandboxConfig(security_context=api.LinuxSandboxSecurityContext(**security)),
        )
    )


def spec_input(**overrides: Any) -> ContainerSpecInput:
    """A ContainerSpecInput of a plain container in a plain pod, with ``overrides``."""
    values: dict[str, Any] = {
        "container_id": "c1",
        "pod_id": "p1",
        "config": container_config(),
        "pod_config": pod_config(),
        "image_config": {"config": {"Cmd": ["sh"], "Env": ["PATH=/bin:/usr/bin"]}},
        "rootfs": "/var/lib/rootfs",
        "infra_pid": 42,
        "pod_netns_path": "/var/run/netns/crio-p1",
        "pod_shm_path": "/run/pods/p1/shm",
        "pod_files": {
            "hostname": "/pods/p1/hostname",
            "resolv.conf": "/pods/p1/resolv.conf",
            "hosts": "/pods/p1/hosts",
        },
        "pod_hostname": "podhost",
        "cgroup_parent": "/kubepods/pod1",
        "passwd": PASSWD,
        "group": GROUP,
        "bounding_caps": BOUNDING,
        "default_caps": DEFAULT_CAPS,
        "daemon_oom_score_adj": -999,
    }
    values.update(overrides)
    return ContainerSpecInput(**values)
