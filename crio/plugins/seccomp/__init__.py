"""Security plugin: seccomp profiles (RuntimeDefault, Localhost, Unconfined). Needs ``crio[seccomp]``.

Implemented so far: the host check. Profile hooks arrive with the security-context issue.
"""

from __future__ import annotations

from pathlib import Path

import pyseccomp  # noqa: F401  # the optional dependency: its absence skips this plugin

from crio.core.config import Config
from crio.core.hookspecs import hookimpl


def kernel_has_seccomp(status: Path = Path("/proc/self/status")) -> bool:
    """Return True when the kernel reports seccomp support for processes."""
    try:
        return any(line.startswith("Seccomp:") for line in status.read_text().splitlines())
    except OSError:
        return False


@hookimpl
def crio_plugin_unavailable(config: Config) -> str | None:
    """Skip the plugin on kernels without seccomp."""
    return None if kernel_has_seccomp() else "the kernel has no seccomp support"
