"""Spec pieces every container gets: default mounts, masked and read-only paths, the default PATH."""

from __future__ import annotations

from typing import Any

OCI_VERSION = "1.0.2-dev"
DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

MASKED_PATHS = (
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
)
READONLY_PATHS = (
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
)


def default_mounts(read_only_sys: bool = True) -> list[dict[str, Any]]:
    """/proc, /dev, /dev/pts, /dev/mqueue and /sys (see :func:`cgroup_mount` for /sys/fs/cgroup)."""
    return [
        {"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]},
        {
            "destination": "/dev",
            "type": "tmpfs",
            "source": "tmpfs",
            "options": ["nosuid", "strictatime", "mode=755", "size=65536k"],
        },
        {
            "destination": "/dev/pts",
            "type": "devpts",
            "source": "devpts",
            "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"],
        },
        {
            "destination": "/dev/mqueue",
            "type": "mqueue",
            "source": "mqueue",
            "options": ["nosuid", "noexec", "nodev"],
        },
        {
            "destination": "/sys",
            "type": "sysfs",
            "source": "sysfs",
            "options": ["nosuid", "noexec", "nodev", *(["ro"] if read_only_sys else [])],
        },
    ]


def cgroup_mount(read_only: bool = True) -> dict[str, Any]:
    """The container's view of its cgroup at /sys/fs/cgroup (writable only for privileged containers)."""
    return {
        "destination": "/sys/fs/cgroup",
        "type": "cgroup",
        "source": "cgroup",
        "options": ["nosuid", "noexec", "nodev", "relatime", "ro" if read_only else "rw"],
    }


# The character devices every container may use: (major, minor, what); minor None means all of the major.
DEFAULT_ALLOWED_CHAR_DEVICES: tuple[tuple[int, int | None, str], ...] = (
    (1, 3, "/dev/null"),
    (1, 5, "/dev/zero"),
    (1, 7, "/dev/full"),
    (1, 8, "/dev/random"),
    (1, 9, "/dev/urandom"),
    (5, 0, "/dev/tty"),
    (5, 2, "/dev/ptmx"),
    (136, None, "/dev/pts/*"),
)


def default_device_rules() -> list[dict[str, Any]]:
    """The device cgroup rules of an unprivileged container: deny everything, then allow the standard
    character devices (runc creates their nodes itself)."""
    rules: list[dict[str, Any]] = [{"allow": False, "access": "rwm"}]
    for major, minor, _ in DEFAULT_ALLOWED_CHAR_DEVICES:
        rule: dict[str, Any] = {"allow": True, "type": "c", "major": major, "access": "rwm"}
        if minor is not None:
            rule["minor"] = minor
        rules.append(rule)
    return rules
