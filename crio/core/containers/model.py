"""A container as crio keeps it, and its persisted form (``container.json`` in the ContainerDirectory)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from crio.core.crirecords import ContainerConfig
from crio.core.lifecycle.machine import CREATED, EXITED, REMOVING, RUNNING
from crio.core.statefile import JsonState

__all__ = [
    "CREATED",
    "EXITED",
    "REASON_COMPLETED",
    "REASON_ERROR",
    "REASON_OOM",
    "REMOVING",
    "RUNNING",
    "Container",
]

REASON_COMPLETED = "Completed"
REASON_ERROR = "Error"
REASON_OOM = "OOMKilled"


@dataclass
class Container(JsonState):
    """One container of a pod."""

    STATE_FILE: ClassVar[str] = "container.json"

    id: str
    name: str  # storage name k8s_<name>_<pod>_<namespace>_<uid>_<attempt>
    pod_id: str
    config: ContainerConfig
    image: str  # the image as the request named it
    image_id: str
    image_name: str  # the name the image is stored under (first repo tag), or its ID
    runtime_handler: str
    log_path: str  # absolute ("" when the pod has no log directory)
    created_at: int  # ns since the epoch
    state: str = CREATED
    started_at: int = 0
    finished_at: int = 0
    exit_code: int = 0
    reason: str = ""
    message: str = ""
    pid: int = 0
    stop_signal: str = ""
    user: dict[str, Any] = field(default_factory=dict)  # uid, gid, supplemental_groups as run
    # image volumes as mounted (crio.core.containers.imagevolumes.MountedVolume.to_dict()); the mounts
    # themselves are found and removed through the store, which needs none of this
    image_volumes: list[dict[str, Any]] = field(default_factory=list)
