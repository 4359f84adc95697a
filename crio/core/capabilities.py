"""Linux capability names by number, and the daemon's own bounding set."""

from __future__ import annotations

from pathlib import Path

# Capability numbers from linux/capability.h (0 .. 40).
NAMES = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
    "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT",
    "CAP_SYS_NICE", "CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE",
    "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN",
    "CAP_SYSLOG", "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
)  # fmt: skip


def names_of_mask(mask: int) -> list[str]:
    """The capability names set in ``mask`` (numbers the table does not know are left out)."""
    return [name for number, name in enumerate(NAMES) if mask >> number & 1]


def bounding_set(status: Path = Path("/proc/self/status")) -> list[str]:
    """The daemon's own bounding set: privileged containers and ``add: ALL`` get exactly these."""
    for line in status.read_text().splitlines():
        if line.startswith("CapBnd:"):
            return names_of_mask(int(line.split()[1], 16))
    return list(NAMES)
