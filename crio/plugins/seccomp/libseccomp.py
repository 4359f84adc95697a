"""A dry run of an OCI ``linux.seccomp`` filter through the host's libseccomp (pyseccomp).

The filter is built as runc will build it (rules whose action is the default action skipped, syscall names
unknown to this libseccomp skipped, ``SCMP_ACT_ERRNO`` without errnoRet meaning EPERM) but never loaded. A
rule libseccomp refuses (an argument index or comparison it cannot encode) is reported at CreateContainer
as InvalidArgument instead of failing inside ``runtime create``. EEXIST (a rule that collides with one
already added, which libseccomp also answers for sub-architecture translations) is not an error.
"""

from __future__ import annotations

import errno
import logging
from collections.abc import Mapping
from typing import Any

import pyseccomp

from crio.core.errors import InvalidArgument

log = logging.getLogger(__name__)

_OPERATORS = {
    "SCMP_CMP_NE": pyseccomp.NE,
    "SCMP_CMP_LT": pyseccomp.LT,
    "SCMP_CMP_LE": pyseccomp.LE,
    "SCMP_CMP_EQ": pyseccomp.EQ,
    "SCMP_CMP_GE": pyseccomp.GE,
    "SCMP_CMP_GT": pyseccomp.GT,
    "SCMP_CMP_MASKED_EQ": pyseccomp.MASKED_EQ,
}


def _action(name: str, value: int | None) -> int:
    """A libseccomp action value; ERRNO defaults to EPERM and TRACE to 0, as in runc."""
    simple = {
        "SCMP_ACT_ALLOW": pyseccomp.ALLOW,
        "SCMP_ACT_KILL": pyseccomp.KILL,
        "SCMP_ACT_KILL_THREAD": pyseccomp.KILL_THREAD,
        "SCMP_ACT_KILL_PROCESS": pyseccomp.KILL_PROCESS,
        "SCMP_ACT_TRAP": pyseccomp.TRAP,
        "SCMP_ACT_LOG": pyseccomp.LOG,
    }
    if name in simple:
        return int(simple[name])
    if name == "SCMP_ACT_ERRNO":
        return int(pyseccomp.ERRNO(errno.EPERM if value is None else value))
    if name == "SCMP_ACT_TRACE":
        return int(pyseccomp.TRACE(0 if value is None else value))
    raise InvalidArgument(f"seccomp profile: unknown action {name!r}")


def _arch(name: str) -> Any:
    return getattr(pyseccomp.Arch, name.removeprefix("SCMP_ARCH_"), None)


def unknown_syscall(name: str) -> bool:
    """Whether this host's libseccomp does not know ``name`` on the native architecture."""
    number = pyseccomp.resolve_syscall(pyseccomp.Arch.NATIVE, name)
    return isinstance(number, int) and number < 0


def dry_run(seccomp: Mapping[str, Any]) -> list[str]:
    """Build the filter of ``seccomp`` (OCI ``linux.seccomp``) without loading it.

    Returns the syscall names this libseccomp does not know (runc ignores them too). Raises
    :class:`crio.core.errors.InvalidArgument` when libseccomp refuses a rule or an architecture.
    """
    default = _action(seccomp["defaultAction"], seccomp.get("defaultErrnoRet"))
    built = pyseccomp.SyscallFilter(default)
    for name in seccomp.get("architectures", []):
        arch = _arch(name)
        if arch is None:
            raise InvalidArgument(f"seccomp profile: libseccomp does not know architecture {name}")
        try:
            built.add_arch(arch)
        except OSError as exc:
            if exc.errno != errno.EEXIST:  # the native architecture is always there
                raise InvalidArgument(f"seccomp profile: architecture {name}: {exc.strerror}") from None
    unknown: list[str] = []
    for rule in seccomp.get("syscalls", []):
        action = _action(rule["action"], rule.get("errnoRet"))
        if action == default:
            continue  # runc skips rules that repeat the default action
        args = [
            pyseccomp.Arg(a["index"], _OPERATORS[a["op"]], a.get("value", 0), a.get("valueTwo", 0))
            for a in rule.get("args", [])
        ]
        for name in rule["names"]:
            if unknown_syscall(name):
                unknown.append(name)
                continue
            try:
                built.add_rule(action, name, *args)
            except OSError as exc:
                if exc.errno == errno.EEXIST:
                    # An overlapping rule of a sub-architecture (x86 turns socket() rules into socketcall()
                    # ones, which can collide); libseccomp keeps the first, as it does inside runc.
                    continue
                raise InvalidArgument(
                    f"seccomp profile: libseccomp refuses the rule for {name}: {exc.strerror}"
                ) from None
    return sorted(set(unknown))
