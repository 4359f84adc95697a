"""The small files every pod gets: hostname, resolv.conf and hosts. Pure functions returning text."""

from __future__ import annotations

from collections.abc import Sequence

from crio.core.crirecords import DNSConfig
from crio.core.errors import InvalidArgument

MAX_SEARCHES = 32
MAX_NAMESERVERS = 3


def resolv_conf(dns: DNSConfig | None, host_resolv: str) -> str:
    """resolv.conf for the pod: its DNS config, or the host's file when the pod names no DNS at all."""
    servers, searches, options = (dns.servers, dns.searches, dns.options) if dns is not None else ((), (), ())
    if not (servers or searches or options):
        return host_resolv
    for value in (*servers, *searches, *options):
        if not value or any(c.isspace() for c in value):
            raise InvalidArgument(f"dns_config entry {value!r} is empty or contains white space")
    if len(searches) > MAX_SEARCHES:
        raise InvalidArgument(f"dns_config.searches has {len(searches)} entries, at most {MAX_SEARCHES}")
    lines = [f"nameserver {server}" for server in servers]
    if searches:
        lines.append("search " + " ".join(searches))
    if options:
        lines.append("options " + " ".join(options))
    return "\n".join(lines) + "\n"


def hosts_file(hostname: str, ips: Sequence[str]) -> str:
    """/etc/hosts: loopback names, and the pod's hostname on its first address when it has one."""
    lines = [
        "127.0.0.1\tlocalhost",
        "::1\tlocalhost ip6-localhost ip6-loopback",
        "fe00::0\tip6-localnet",
        "fe00::0\tip6-mcastprefix",
        "fe00::1\tip6-allnodes",
        "fe00::2\tip6-allrouters",
    ]
    if hostname and ips:
        lines.append(f"{ips[0]}\t{hostname}")
    return "\n".join(lines) + "\n"


def hostname_file(hostname: str) -> str:
    """/etc/hostname."""
    return hostname + "\n"
