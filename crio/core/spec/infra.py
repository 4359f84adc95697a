"""The OCI spec of a pod's infrastructure ("pause") container, which holds the pod's namespaces."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from crio.core.spec.defaults import DEFAULT_PATH, MASKED_PATHS, OCI_VERSION, READONLY_PATHS, default_mounts

# The infra container should be the last thing the OOM killer picks; the runtime clamps this to what the
# daemon may set.
INFRA_OOM_SCORE_ADJ = -998
INFRA_CPU_SHARES = 2
CAPABILITY_SETS = ("bounding", "effective", "permitted", "inheritable", "ambient")


@dataclass(frozen=True)
class InfraSpecInput:
    """What the infra container's spec is built from."""

    pod_id: str
    rootfs: str
    args: Sequence[str]
    env: Sequence[str]
    hostname: str
    cgroups_path: str
    netns_path: str  # "" with host network
    host_network: bool
    host_ipc: bool
    host_pid: bool
    shm_path: str  # the pod's /dev/shm (a tmpfs), or "" with host IPC
    sysctls: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)
    userns_path: str = ""  # the pod's pinned user namespace, "" for none
    uid_mappings: Sequence[Mapping[str, int]] = ()  # OCI form; with userns_path
    gid_mappings: Sequence[Mapping[str, int]] = ()


def infra_spec(spec_input: InfraSpecInput) -> dict[str, Any]:
    """Build the OCI runtime spec (as a dict) of the pod's infra container."""
    namespaces: list[dict[str, str]] = [{"type": "mount"}]
    if not spec_input.host_network:
        namespaces += [{"type": "network", "path": spec_input.netns_path}, {"type": "uts"}]
    if not spec_input.host_ipc:
        namespaces.append({"type": "ipc"})
    if not spec_input.host_pid:
        namespaces.append({"type": "pid"})
    if spec_input.userns_path:
        namespaces.append({"type": "user", "path": spec_input.userns_path})
    mounts = default_mounts()
    if spec_input.shm_path:
        mounts.append(
            {
                "destination": "/dev/shm",
                "type": "bind",
                "source": spec_input.shm_path,
                "options": ["rbind", "rprivate", "nosuid", "noexec", "nodev"],
            }
        )
    spec: dict[str, Any] = {
        "ociVersion": OCI_VERSION,
        "process": {
            "terminal": False,
            "user": {"uid": 0, "gid": 0},
            "args": list(spec_input.args),
            "env": list(spec_input.env) or [DEFAULT_PATH],
            "cwd": "/",
            "capabilities": {key: [] for key in CAPABILITY_SETS},
            "noNewPrivileges": True,
            "oomScoreAdj": INFRA_OOM_SCORE_ADJ,
        },
        "root": {"path": spec_input.rootfs, "readonly": True},
        "mounts": mounts,
        "annotations": dict(spec_input.annotations),
        "linux": {
            "namespaces": namespaces,
            "cgroupsPath": spec_input.cgroups_path,
            "resources": {"cpu": {"shares": INFRA_CPU_SHARES}},
            "sysctl": dict(spec_input.sysctls),
            "maskedPaths": list(MASKED_PATHS),
            "readonlyPaths": list(READONLY_PATHS),
        },
    }
    if spec_input.userns_path:
        spec["linux"]["uidMappings"] = [dict(m) for m in spec_input.uid_mappings]
        spec["linux"]["gidMappings"] = [dict(m) for m in spec_input.gid_mappings]
    if not spec_input.host_network:
        spec["hostname"] = spec_input.hostname
    return spec
