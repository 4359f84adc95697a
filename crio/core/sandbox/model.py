"""A pod sandbox as crio keeps it, and its persisted form (``sandbox.json`` in the ContainerDirectory)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import ClassVar

from crio.core.crirecords import PodSandboxConfig
from crio.core.lifecycle.machine import NOTREADY, READY
from crio.core.statefile import JsonState

__all__ = ["NOTREADY", "READY", "Sandbox", "config_digest"]


def config_digest(config: PodSandboxConfig, runtime_handler: str) -> str:
    """A stable digest of a pod config, to recognise a kubelet's retry of the same RunPodSandbox (the same
    as before records: the dict form is the one it was computed from)."""
    data = json.dumps({"config": config.to_dict(), "handler": runtime_handler}, sort_keys=True).encode()
    return hashlib.sha256(data).hexdigest()


@dataclass
class Sandbox(JsonState):
    """One pod sandbox. Its infra container has the pod's ID."""

    STATE_FILE: ClassVar[str] = "sandbox.json"

    id: str
    name: str  # the storage name, k8s_POD_<name>_<namespace>_<uid>_<attempt>
    config: PodSandboxConfig
    runtime_handler: str
    created_at: int  # ns since the epoch
    config_digest: str
    state: str = READY
    netns_path: str = ""
    ips: list[str] = field(default_factory=list)
    infra_pid: int = 0
    shm_path: str = ""
    hostname: str = ""
    cgroup_parent: str = ""
    files: dict[str, str] = field(default_factory=dict)  # hostname/resolv.conf/hosts → host path
    network_attached: bool = False
    userns_path: str = ""  # the pod's pinned user namespace ("" without one)
    uid_mappings: list[dict[str, int]] = field(default_factory=list)  # OCI form, with userns_path
    gid_mappings: list[dict[str, int]] = field(default_factory=list)

    @property
    def pod_id(self) -> str:
        """A pod's pod is itself (its infra container has the pod's ID)."""
        return self.id
