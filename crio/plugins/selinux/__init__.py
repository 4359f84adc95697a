"""Security plugin: SELinux process and mount labels (active only where SELinux is enabled).

Needs ``crio[selinux]``. Implemented so far: the host check. Label hooks arrive with the security-context
issue.
"""

from __future__ import annotations

from pathlib import Path

from crio.core.config import Config
from crio.core.hookspecs import hookimpl

SELINUXFS = Path("/sys/fs/selinux")


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
