"""SELinux label logic, pure: process and mount labels of pods and containers.

Every pod gets an MCS level (``s0:cA,cB``, two distinct categories out of 1024, unique on the node) unless
its SELinuxOption names one; its containers share that level, so they can share files with each other but
not with other pods. Processes run as ``container_t`` (``spc_t`` when privileged) and files carry
``container_file_t``; ``selinux_options`` may override the user, role, type and level.
"""

from __future__ import annotations

import random
import re
from collections.abc import Container, Mapping
from dataclasses import dataclass, replace

from crio.core.errors import InvalidArgument, Unavailable

USER = "system_u"
PROCESS_ROLE = "system_r"
FILE_ROLE = "object_r"
PROCESS_TYPE = "container_t"
PRIVILEGED_TYPE = "spc_t"
FILE_TYPE = "container_file_t"
SENSITIVITY = "s0"
CATEGORIES = 1024
_CATEGORY = r"c\d{1,4}(?:\.c\d{1,4})?"
_LEVEL = re.compile(rf"s\d{{1,2}}(?:-s\d{{1,2}})?(?::{_CATEGORY}(?:,{_CATEGORY})*)?")
_NAME = re.compile(r"[A-Za-z0-9_]+")


@dataclass(frozen=True)
class Label:
    """An SELinux context ``user:role:type:level``."""

    user: str
    role: str
    type: str
    level: str

    def __str__(self) -> str:
        return f"{self.user}:{self.role}:{self.type}:{self.level}"

    @classmethod
    def parse(cls, text: str) -> Label:
        """``user:role:type:level`` (the level may hold colons itself)."""
        parts = text.split(":", 3)
        if len(parts) != 4 or not all(parts):
            raise InvalidArgument(f"SELinux label {text!r} is not user:role:type:level")
        return cls(*parts)


def check_level(level: str) -> str:
    """An MLS/MCS level such as ``s0:c1,c2`` (InvalidArgument otherwise)."""
    if not _LEVEL.fullmatch(level):
        raise InvalidArgument(f"SELinux level {level!r} is not valid (expected e.g. s0:c123,c456)")
    for number in re.findall(r"c(\d+)", level):
        if int(number) >= CATEGORIES:
            raise InvalidArgument(f"SELinux level {level!r}: category c{number} is out of range")
    return level


def check_options(options: Mapping[str, str]) -> dict[str, str]:
    """Validated SELinuxOption fields (user, role, type as identifiers; level as a level)."""
    checked = {}
    for name, value in options.items():
        if name == "level":
            checked[name] = check_level(value)
        elif _NAME.fullmatch(value):
            checked[name] = value
        else:
            raise InvalidArgument(f"SELinux {name} {value!r} is not valid")
    return checked


def new_level(taken: Container[str], rng: random.Random | None = None, attempts: int = 1000) -> str:
    """A random MCS level ``s0:cA,cB`` (A < B) that is not in ``taken``."""
    chooser = rng or random.SystemRandom()
    for _ in range(attempts):
        low, high = sorted(chooser.sample(range(CATEGORIES), 2))
        level = f"{SENSITIVITY}:c{low},c{high}"
        if level not in taken:
            return level
    raise Unavailable("no free SELinux MCS level is left for a new pod")


def _apply(label: Label, options: Mapping[str, str]) -> Label:
    return replace(label, **{k: v for k, v in options.items() if k in ("user", "role", "type", "level")})


def labels(options: Mapping[str, str], privileged: bool, level: str) -> tuple[str, str]:
    """(process label, mount label) at ``level`` with the overrides of ``options``.

    Privileged processes run as ``spc_t`` (an explicit type still wins); the mount label keeps the file role
    and type and only takes the options' user and level.
    """
    checked = check_options(options)
    process = Label(USER, PROCESS_ROLE, PRIVILEGED_TYPE if privileged else PROCESS_TYPE, level)
    mount = Label(USER, FILE_ROLE, FILE_TYPE, level)
    process = _apply(process, checked)
    mount = _apply(mount, {k: v for k, v in checked.items() if k in ("user", "level")})
    return str(process), str(mount)


def pod_labels(options: Mapping[str, str], privileged: bool, taken: Container[str]) -> tuple[str, str]:
    """The pod's labels: its own level from ``options`` or a new one not in ``taken``."""
    level = options.get("level") or new_level(taken)
    return labels({**options, "level": level}, privileged, level)


def container_labels(pod_process_label: str, options: Mapping[str, str], privileged: bool) -> tuple[str, str]:
    """A container's labels: its pod's level unless its own options name one."""
    level = options.get("level") or Label.parse(pod_process_label).level
    return labels({**options, "level": level}, privileged, level)
