"""Security plugin: SELinux process and mount labels (active only where SELinux is enabled).

Needs ``crio[selinux]``. Pods get a unique MCS level (or the one their SELinuxOption names) on their infra
container; their containers share it (read back from the infra container's spec); privileged ones run as
``spc_t``. Labels land in ``process.selinuxLabel`` and ``linux.mountLabel``. The logic lives in
:mod:`.labels`, pure. Levels in use are remembered for the daemon's lifetime; after a restart a new pod
could, improbably, draw a level an older pod still holds.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from crio.core.config import Config
from crio.core.hookspecs import hookimpl
from crio.core.security_profiles import selinux_options
from crio.core.types import SecurityRequest
from crio.plugins.selinux.labels import Label, check_options, container_labels, pod_labels

SELINUXFS = Path("/sys/fs/selinux")


class SELinuxState:
    """The MCS levels handed out to pods."""

    def __init__(self) -> None:
        self.levels: dict[str, str] = {}
        self._lock = threading.Lock()

    def labels_for(self, request: SecurityRequest) -> tuple[str, str]:
        """(process label, mount label) of a pod or container request."""
        options = selinux_options(request.security_context)
        if request.kind == "pod":
            with self._lock:
                process, mount = pod_labels(options, request.privileged, set(self.levels.values()))
                self.levels[request.pod_id or request.name] = Label.parse(process).level
            return process, mount
        pod_label = str(request.pod_spec.get("process", {}).get("selinuxLabel") or "")
        if not pod_label:
            pod_label, _ = pod_labels(selinux_options(request.pod_security_context), False, ())
        return container_labels(pod_label, options, request.privileged)


STATE = SELinuxState()


@hookimpl
def crio_plugin_unavailable(config: Config) -> str | None:
    """Skip the plugin where SELinux is disabled or the host's SELinux bindings are missing."""
    if not (SELINUXFS / "enforce").exists():
        return f"SELinux is not enabled on this host (no {SELINUXFS})"
    try:
        import selinux  # the host's bindings, through the PyPI shim of crio[selinux]
    except ImportError as exc:
        return f"the host's SELinux Python bindings cannot be loaded ({exc}): apt-get install python3-selinux"
    return None if selinux.is_selinux_enabled() else "SELinux is disabled"


@hookimpl
def crio_security_validate(request: SecurityRequest) -> None:
    """Refuse malformed SELinuxOption fields (a bad level fails the request)."""
    check_options(selinux_options(request.security_context))


@hookimpl
def crio_security_adjust_spec(request: SecurityRequest, spec: dict[str, Any]) -> None:
    """Label the process and the container's mounts."""
    process, mount = STATE.labels_for(request)
    spec.setdefault("process", {})["selinuxLabel"] = process
    spec.setdefault("linux", {})["mountLabel"] = mount


@hookimpl
def crio_security_features() -> Mapping[str, Any]:
    """SELinux labelling is enabled."""
    return {"selinux": {"enabled": True}}
