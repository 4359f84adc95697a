"""Security plugin: AppArmor profiles for containers (active only where the kernel has AppArmor).

Implemented so far: the host check. Profile hooks arrive with the security-context issue.
"""

from __future__ import annotations

from pathlib import Path

from crio.core.config import Config
from crio.core.hookspecs import hookimpl

ENABLED_PARAMETER = Path("/sys/module/apparmor/parameters/enabled")


def apparmor_enabled(parameter: Path = ENABLED_PARAMETER) -> bool:
    """Return True when the kernel's AppArmor module is enabled."""
    try:
        return parameter.read_text().strip() == "Y"
    except OSError:
        return False


@hookimpl
def crio_plugin_unavailable(config: Config) -> str | None:
    """Skip the plugin where the kernel has no AppArmor."""
    return None if apparmor_enabled() else f"AppArmor is not enabled in the kernel ({ENABLED_PARAMETER})"
