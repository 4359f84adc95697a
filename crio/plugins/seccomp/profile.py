"""Seccomp profiles: validation of the containers seccomp.json format and its rendering into OCI
``linux.seccomp`` for one container. Pure functions.

The format is what Docker, podman, CRI-O and the kubelet's localhost profiles use: ``defaultAction``,
``defaultErrnoRet``, ``architectures`` or ``archMap``, ``flags`` and ``syscalls`` entries with ``names`` (or
the old ``name``), ``action``, ``errnoRet``, ``args`` and conditions ``includes``/``excludes`` on capabilities
(``caps``), architectures (``arches``, Go names) and ``minKernel``. Unknown keys are ignored, as Go's JSON
decoding does; a wrong type or value is an :class:`crio.core.errors.InvalidArgument` naming the field.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from crio.core.errors import InvalidArgument

ACTIONS = frozenset(
    {
        "SCMP_ACT_KILL",
        "SCMP_ACT_KILL_PROCESS",
        "SCMP_ACT_KILL_THREAD",
        "SCMP_ACT_TRAP",
        "SCMP_ACT_ERRNO",
        "SCMP_ACT_TRACE",
        "SCMP_ACT_ALLOW",
        "SCMP_ACT_LOG",
    }
)
# Actions that take an errno (or a tracer message) value.
ERRNO_ACTIONS = frozenset({"SCMP_ACT_ERRNO", "SCMP_ACT_TRACE"})
OPERATORS = frozenset(
    {
        "SCMP_CMP_NE",
        "SCMP_CMP_LT",
        "SCMP_CMP_LE",
        "SCMP_CMP_EQ",
        "SCMP_CMP_GE",
        "SCMP_CMP_GT",
        "SCMP_CMP_MASKED_EQ",
    }
)
ARCHITECTURES = frozenset(
    {
        "SCMP_ARCH_X86",
        "SCMP_ARCH_X86_64",
        "SCMP_ARCH_X32",
        "SCMP_ARCH_ARM",
        "SCMP_ARCH_AARCH64",
        "SCMP_ARCH_MIPS",
        "SCMP_ARCH_MIPS64",
        "SCMP_ARCH_MIPS64N32",
        "SCMP_ARCH_MIPSEL",
        "SCMP_ARCH_MIPSEL64",
        "SCMP_ARCH_MIPSEL64N32",
        "SCMP_ARCH_PPC",
        "SCMP_ARCH_PPC64",
        "SCMP_ARCH_PPC64LE",
        "SCMP_ARCH_S390",
        "SCMP_ARCH_S390X",
        "SCMP_ARCH_PARISC",
        "SCMP_ARCH_PARISC64",
        "SCMP_ARCH_RISCV64",
    }
)
FLAGS = frozenset({"SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW"})
MAX_ARG_INDEX = 5
MAX_U64 = (1 << 64) - 1
MAX_ERRNO = 4095
_SYSCALL_NAME = re.compile(r"[a-z_][a-z0-9_]*")
_KERNEL_VERSION = re.compile(r"(\d+)\.(\d+)")

# os.uname().machine → (Go architecture name, libseccomp architecture).
MACHINES = {
    "x86_64": ("amd64", "SCMP_ARCH_X86_64"),
    "i686": ("386", "SCMP_ARCH_X86"),
    "i386": ("386", "SCMP_ARCH_X86"),
    "aarch64": ("arm64", "SCMP_ARCH_AARCH64"),
    "armv7l": ("arm", "SCMP_ARCH_ARM"),
    "ppc64le": ("ppc64le", "SCMP_ARCH_PPC64LE"),
    "s390x": ("s390x", "SCMP_ARCH_S390X"),
    "riscv64": ("riscv64", "SCMP_ARCH_RISCV64"),
    "mips64": ("mips64", "SCMP_ARCH_MIPS64"),
}


@dataclass(frozen=True)
class Arg:
    """A condition on one syscall argument (OCI ``LinuxSeccompArg``)."""

    index: int
    value: int
    value_two: int
    op: str


@dataclass(frozen=True)
class Condition:
    """``includes``/``excludes``: capabilities (all must be held / any held excludes), Go architectures and
    a minimal kernel version ("5.4")."""

    caps: tuple[str, ...] = ()
    arches: tuple[str, ...] = ()
    min_kernel: tuple[int, int] | None = None

    @property
    def empty(self) -> bool:
        """No condition at all."""
        return not self.caps and not self.arches and self.min_kernel is None


@dataclass(frozen=True)
class Rule:
    """One ``syscalls`` entry."""

    names: tuple[str, ...]
    action: str
    errno_ret: int | None = None
    args: tuple[Arg, ...] = ()
    includes: Condition = field(default_factory=Condition)
    excludes: Condition = field(default_factory=Condition)


@dataclass(frozen=True)
class Profile:
    """A validated seccomp profile."""

    default_action: str
    default_errno_ret: int | None = None
    architectures: tuple[str, ...] = ()
    arch_map: tuple[tuple[str, tuple[str, ...]], ...] = ()
    flags: tuple[str, ...] = ()
    rules: tuple[Rule, ...] = ()


@dataclass(frozen=True)
class Host:
    """What rendering a profile depends on: the host architecture and kernel version."""

    go_arch: str
    scmp_arch: str
    kernel: tuple[int, int]

    @classmethod
    def current(cls) -> Host:
        """This machine."""
        uname = os.uname()
        go_arch, scmp_arch = MACHINES.get(uname.machine, (uname.machine, ""))
        return cls(go_arch, scmp_arch, parse_kernel_version(uname.release) or (0, 0))


def parse_kernel_version(text: str) -> tuple[int, int] | None:
    """ "6.1.0-18-amd64" → (6, 1); None when it does not start with MAJOR.MINOR."""
    match = _KERNEL_VERSION.match(text)
    return (int(match.group(1)), int(match.group(2))) if match else None


# ------------------------------------------------------------------------------------------- parsing


def _fail(where: str, problem: str) -> InvalidArgument:
    return InvalidArgument(f"seccomp profile: {where}: {problem}")


def _int(value: Any, where: str, maximum: int = MAX_U64) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _fail(where, f"{value!r} is not an integer")
    if not 0 <= value <= maximum:
        raise _fail(where, f"{value} is out of range (0..{maximum})")
    return value


def _strings(value: Any, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _fail(where, f"{value!r} is not a list of strings")
    return tuple(value)


def _choice(value: Any, allowed: frozenset[str], where: str, what: str) -> str:
    if not isinstance(value, str) or value not in allowed:
        raise _fail(where, f"unknown {what} {value!r}")
    return value


def _errno(value: Any, action: str, where: str) -> int | None:
    if value is None:
        return None
    if action not in ERRNO_ACTIONS:
        raise _fail(where, f"errnoRet is only valid with SCMP_ACT_ERRNO or SCMP_ACT_TRACE, not {action}")
    return _int(value, where, MAX_ERRNO)


def _arg(raw: Any, where: str) -> Arg:
    if not isinstance(raw, Mapping):
        raise _fail(where, "an argument condition must be an object")
    index = _int(raw.get("index"), f"{where}.index", MAX_ARG_INDEX)
    value = _int(raw.get("value", 0), f"{where}.value")
    value_two = _int(raw.get("valueTwo", 0), f"{where}.valueTwo")
    op = _choice(raw.get("op"), OPERATORS, f"{where}.op", "operator")
    return Arg(index, value, value_two, op)


def _condition(raw: Any, where: str) -> Condition:
    if raw is None:
        return Condition()
    if not isinstance(raw, Mapping):
        raise _fail(where, "must be an object")
    caps = _strings(raw.get("caps"), f"{where}.caps")
    for cap in caps:
        if not re.fullmatch(r"CAP_[A-Z0-9_]+", cap):
            raise _fail(f"{where}.caps", f"{cap!r} is not a capability name")
    min_kernel = None
    if raw.get("minKernel"):
        text = raw["minKernel"]
        min_kernel = parse_kernel_version(text) if isinstance(text, str) else None
        if min_kernel is None:
            raise _fail(f"{where}.minKernel", f"{text!r} is not a kernel version")
    return Condition(caps, _strings(raw.get("arches"), f"{where}.arches"), min_kernel)


def _names(raw: Mapping[str, Any], where: str) -> tuple[str, ...]:
    names = list(_strings(raw.get("names"), f"{where}.names"))
    legacy = raw.get("name")
    if legacy:
        if not isinstance(legacy, str):
            raise _fail(f"{where}.name", f"{legacy!r} is not a string")
        names.append(legacy)
    if not names:
        raise _fail(where, "a syscall rule needs names")
    for name in names:
        if not _SYSCALL_NAME.fullmatch(name):
            raise _fail(f"{where}.names", f"{name!r} is not a syscall name")
    return tuple(names)


def _rule(raw: Any, where: str) -> Rule:
    if not isinstance(raw, Mapping):
        raise _fail(where, "a syscall rule must be an object")
    names = _names(raw, where)
    action = _choice(raw.get("action"), ACTIONS, f"{where}.action", "action")
    args_raw = raw.get("args")
    args_raw = [] if args_raw is None else args_raw
    if not isinstance(args_raw, list):
        raise _fail(f"{where}.args", "must be a list")
    return Rule(
        names=names,
        action=action,
        errno_ret=_errno(raw.get("errnoRet"), action, f"{where}.errnoRet"),
        args=tuple(_arg(a, f"{where}.args[{i}]") for i, a in enumerate(args_raw)),
        includes=_condition(raw.get("includes"), f"{where}.includes"),
        excludes=_condition(raw.get("excludes"), f"{where}.excludes"),
    )


def _arch_map(raw: Any) -> tuple[tuple[str, tuple[str, ...]], ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise _fail("archMap", "must be a list")
    result = []
    for i, entry in enumerate(raw):
        where = f"archMap[{i}]"
        if not isinstance(entry, Mapping):
            raise _fail(where, "must be an object")
        arch = _choice(entry.get("architecture"), ARCHITECTURES, f"{where}.architecture", "architecture")
        subs = _strings(entry.get("subArchitectures"), f"{where}.subArchitectures")
        for sub in subs:
            _choice(sub, ARCHITECTURES, f"{where}.subArchitectures", "architecture")
        result.append((arch, subs))
    return tuple(result)


def parse_profile(data: Any) -> Profile:
    """Validate a decoded seccomp.json document and return it as a :class:`Profile`.

    Listener (``SCMP_ACT_NOTIFY``) profiles are refused: crio runs no seccomp notifier agent.
    """
    if not isinstance(data, Mapping):
        raise _fail("document", "a profile must be a JSON object")
    if data.get("listenerPath") or data.get("defaultAction") == "SCMP_ACT_NOTIFY":
        raise _fail("document", "seccomp notifier (listener) profiles are not supported")
    default_action = _choice(data.get("defaultAction"), ACTIONS, "defaultAction", "action")
    architectures = _strings(data.get("architectures"), "architectures")
    for arch in architectures:
        _choice(arch, ARCHITECTURES, "architectures", "architecture")
    flags = _strings(data.get("flags"), "flags")
    for flag in flags:
        _choice(flag, FLAGS, "flags", "flag")
    syscalls = data.get("syscalls")
    syscalls = [] if syscalls is None else syscalls
    if not isinstance(syscalls, list):
        raise _fail("syscalls", "must be a list")
    return Profile(
        default_action=default_action,
        default_errno_ret=_errno(data.get("defaultErrnoRet"), default_action, "defaultErrnoRet"),
        architectures=architectures,
        arch_map=_arch_map(data.get("archMap")),
        flags=flags,
        rules=tuple(_rule(r, f"syscalls[{i}]") for i, r in enumerate(syscalls)),
    )


# ----------------------------------------------------------------------------------------- rendering


def _applies(rule: Rule, caps: frozenset[str], host: Host) -> bool:
    inc, exc = rule.includes, rule.excludes
    if inc.caps and not all(c in caps for c in inc.caps):
        return False
    if inc.arches and host.go_arch not in inc.arches:
        return False
    if inc.min_kernel is not None and host.kernel < inc.min_kernel:
        return False
    if exc.caps and any(c in caps for c in exc.caps):
        return False
    if exc.arches and host.go_arch in exc.arches:
        return False
    return not (exc.min_kernel is not None and host.kernel >= exc.min_kernel)


def architectures(profile: Profile, host: Host) -> list[str]:
    """The profile's architectures for this host: the ``archMap`` entry of the host's architecture with its
    sub-architectures, else the plain ``architectures`` list (empty: the runtime's native one)."""
    for arch, subs in profile.arch_map:
        if arch == host.scmp_arch:
            return [arch, *subs]
    return list(profile.architectures)


def _oci_rule(rule: Rule) -> dict[str, Any]:
    oci: dict[str, Any] = {"names": list(rule.names), "action": rule.action}
    if rule.errno_ret is not None:
        oci["errnoRet"] = rule.errno_ret
    if rule.args:
        oci["args"] = [
            {"index": a.index, "value": a.value, "valueTwo": a.value_two, "op": a.op} for a in rule.args
        ]
    return oci


def render(profile: Profile, bounding_caps: Sequence[str], host: Host) -> dict[str, Any]:
    """OCI ``linux.seccomp`` for a container with these bounding capabilities on ``host``: conditional
    rules are resolved, the rest is copied."""
    caps = frozenset(bounding_caps)
    seccomp: dict[str, Any] = {"defaultAction": profile.default_action}
    if profile.default_errno_ret is not None:
        seccomp["defaultErrnoRet"] = profile.default_errno_ret
    arches = architectures(profile, host)
    if arches:
        seccomp["architectures"] = arches
    if profile.flags:
        seccomp["flags"] = list(profile.flags)
    seccomp["syscalls"] = [_oci_rule(r) for r in profile.rules if _applies(r, caps, host)]
    return seccomp
