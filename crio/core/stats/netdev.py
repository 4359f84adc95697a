"""Per-interface network counters of a pod, from ``/proc/net/dev`` as its network namespace sees it.

The pod's infra process lives in the pod's netns, so ``/proc/<infra pid>/net/dev`` is that namespace's table:
no setns, no helper process. The pid is trusted only while ``/proc/<pid>/ns/net`` is the pinned netns file
(same device and inode), so a reused pid never reports another namespace.
"""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class Interface:
    """Counters of one interface."""

    name: str
    rx_bytes: int
    rx_packets: int
    rx_errors: int
    rx_dropped: int
    tx_bytes: int
    tx_packets: int
    tx_errors: int
    tx_dropped: int


def parse_net_dev(text: str) -> list[Interface]:
    """The interfaces of a ``/proc/net/dev`` text, loopback excluded (cadvisor leaves ``lo`` out too)."""
    interfaces = []
    for line in text.splitlines()[2:]:
        name, sep, rest = line.partition(":")
        name = name.strip()
        if not sep or name == "lo":
            continue
        fields = rest.split()
        if len(fields) < 16:
            continue
        try:
            n = [int(value) for value in fields[:16]]
        except ValueError:
            continue
        interfaces.append(Interface(name, n[0], n[1], n[2], n[3], n[8], n[9], n[10], n[11]))
    return interfaces


def read_pod_interfaces(netns_path: str, infra_pid: int) -> list[Interface] | None:
    """The pod's interfaces, or None when its netns cannot be reached (no netns, infra gone)."""
    if not netns_path or infra_pid <= 0:
        return None
    try:
        pinned = os.stat(netns_path)
        current = os.stat(f"/proc/{infra_pid}/ns/net")
        if (pinned.st_dev, pinned.st_ino) != (current.st_dev, current.st_ino):
            return None
        with open(f"/proc/{infra_pid}/net/dev", encoding="ascii") as handle:
            return parse_net_dev(handle.read())
    except (OSError, UnicodeDecodeError):
        return None
