"""AppArmor profile logic, pure: which profile a pod or container gets, crio's default profile text, and
the kernel's list of loaded profiles."""

from __future__ import annotations

import re
from collections.abc import Iterable

from crio.core.errors import InvalidArgument, NotFound
from crio.core.security_profiles import LOCALHOST, UNCONFINED, apparmor_choice
from crio.core.types import SecurityRequest

DEFAULT_PROFILE = "crio-default"
# Profile names crio writes into a profile file or hands to the runtime.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:+/-]*")

_TEMPLATE = """\
# {name}: the AppArmor profile crio gives containers as runtime/default (written by crio).
#include <tunables/global>

profile {name} flags=(attach_disconnected,mediate_deleted) {{
  #include <abstractions/base>

  # The workload may use the network, its capabilities and its files...
  network,
  capability,
  file,
  umount,

  # ...signal and trace only its own kind, and take signals from the runtime and its monitor.
  signal (receive) peer=unconfined,
  signal (send,receive) peer={name},
  ptrace (trace,read,tracedby,readby) peer={name},

  # Mounting belongs to the runtime.
  deny mount,

  # Host-wide switches and memory under /proc.
  deny @{{PROC}}/sysrq-trigger rwklx,
  deny @{{PROC}}/kcore rwklx,
  deny @{{PROC}}/sys/kernel/[^s]** w,
  deny @{{PROC}}/sys/[^kn]** w,

  # Firmware and the security filesystem under /sys.
  deny /sys/firmware/** rwklx,
  deny /sys/kernel/security/** rwklx,
}}
"""


def check_name(name: str) -> str:
    """An AppArmor profile name crio accepts (no spaces, braces or newlines); InvalidArgument otherwise."""
    if not _NAME.fullmatch(name):
        raise InvalidArgument(f"AppArmor profile name {name!r} is not valid")
    return name


def default_profile_text(name: str = DEFAULT_PROFILE) -> str:
    """The source of crio's default profile under ``name``, for ``apparmor_parser``."""
    return _TEMPLATE.format(name=check_name(name))


def profile_for(request: SecurityRequest, default_name: str = DEFAULT_PROFILE) -> str | None:
    """The profile name the runtime must apply (``process.apparmorProfile``), None for none.

    Privileged requests and unconfined ones get none; runtime/default (also when nothing was asked) gets
    ``default_name``; localhost/NAME gets NAME.
    """
    if request.privileged:
        return None
    choice = apparmor_choice(request.security_context)
    if choice.kind == UNCONFINED:
        return None
    if choice.kind == LOCALHOST:
        return check_name(choice.ref)
    return check_name(default_name)


def parse_loaded(text: str) -> set[str]:
    """Profile names from ``/sys/kernel/security/apparmor/profiles`` ("NAME (MODE)" per line)."""
    names = set()
    for line in text.splitlines():
        name, _, mode = line.rstrip().rpartition(" ")
        if name and mode.startswith("(") and mode.endswith(")"):
            names.add(name)
    return names


def require_loaded(name: str, loaded: Iterable[str]) -> None:
    """NotFound unless ``name`` is among the loaded profiles (a container must never start unconfined
    because its profile is missing)."""
    if name not in set(loaded):
        raise NotFound(f"AppArmor profile {name!r} is not loaded in the kernel")
