"""Storage driver plugin: containers/storage's ``overlay`` driver (layers as overlayfs lower/upper dirs).

Implemented so far: the host check. Layer hooks arrive with the image-store issue.
"""

from __future__ import annotations

from pathlib import Path

from crio.core.config import Config
from crio.core.hookspecs import hookimpl


def overlay_supported(filesystems: Path = Path("/proc/filesystems")) -> bool:
    """Return True when the kernel lists overlayfs (built in, or its module loaded)."""
    try:
        return any(
            line.split()[-1] == "overlay" for line in filesystems.read_text().splitlines() if line.split()
        )
    except OSError:
        return False


@hookimpl
def crio_plugin_unavailable(config: Config) -> str | None:
    """Skip the plugin on kernels without overlayfs."""
    if overlay_supported() or Path("/sys/module/overlay").exists():
        return None
    return "the kernel does not support overlayfs (no 'overlay' in /proc/filesystems; try 'modprobe overlay')"
