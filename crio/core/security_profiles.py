"""Which seccomp and AppArmor profile, and which SELinux options, a CRI security context asks for.

Pure functions over the ``MessageToDict`` form of a CRI ``LinuxContainerSecurityContext`` or
``LinuxSandboxSecurityContext``, the form the security hooks see (:class:`crio.core.types.SecurityRequest`).
The core uses them to refuse a request that no loaded plugin can serve; the security plugins use them to pick
their profile, so both read the CRI fields the same way. Part of the core's public API for plugins.

The CRI carries each profile twice: the ``SecurityProfile`` message (``seccomp``, ``apparmor``) and a
deprecated string (``seccomp_profile_path``, ``apparmor_profile``). The message wins when it is present.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from crio.core.errors import InvalidArgument

UNCONFINED = "unconfined"
RUNTIME_DEFAULT = "runtime/default"
LOCALHOST = "localhost"

# SecurityProfile.ProfileType names as MessageToDict writes them (RuntimeDefault = 0 is omitted).
_PROFILE_TYPES = {"RuntimeDefault": RUNTIME_DEFAULT, "Unconfined": UNCONFINED, "Localhost": LOCALHOST}
_LOCALHOST_PREFIX = "localhost/"
_SELINUX_FIELDS = ("user", "role", "type", "level")


@dataclass(frozen=True)
class ProfileChoice:
    """A requested profile: ``kind`` is :data:`UNCONFINED`, :data:`RUNTIME_DEFAULT` or :data:`LOCALHOST`;
    ``ref`` is the localhost profile (a path for seccomp, a profile name for AppArmor); ``explicit`` says
    the request named the profile (False: nothing was asked and this is the field's default)."""

    kind: str
    ref: str = ""
    explicit: bool = True

    @property
    def confines(self) -> bool:
        """Whether the choice asks for confinement (anything but unconfined)."""
        return self.kind != UNCONFINED


def _security_profile(field: str, profile: Any) -> ProfileChoice:
    if not isinstance(profile, Mapping):
        raise InvalidArgument(f"{field}: {profile!r} is not a SecurityProfile")
    type_name = str(profile.get("profile_type") or "RuntimeDefault")
    kind = _PROFILE_TYPES.get(type_name)
    if kind is None:
        raise InvalidArgument(f"{field}: unknown profile type {type_name!r}")
    ref = str(profile.get("localhost_ref") or "")
    if kind != LOCALHOST:
        return ProfileChoice(kind)
    if not ref:
        raise InvalidArgument(f"{field}: a Localhost profile needs localhost_ref")
    return ProfileChoice(LOCALHOST, ref)


def seccomp_choice(security_context: Mapping[str, Any], default_when_empty: bool = False) -> ProfileChoice:
    """The seccomp profile a security context asks for.

    ``seccomp`` (SecurityProfile) wins: an empty message is RuntimeDefault. Otherwise the deprecated
    ``seccomp_profile_path``: "runtime/default" (or "docker/default"), "unconfined", "localhost/<path>".
    Neither (a nil profile) is unconfined, as the CRI says, or RuntimeDefault with ``default_when_empty``
    (``crio.runtime.seccomp_use_default_when_empty``, CRI-O's key); either way not ``explicit``, since the
    request did not ask for it.
    """
    if "seccomp" in security_context:
        return _security_profile("seccomp", security_context["seccomp"])
    path = str(security_context.get("seccomp_profile_path") or "")
    if not path:
        return ProfileChoice(RUNTIME_DEFAULT if default_when_empty else UNCONFINED, explicit=False)
    if path in (RUNTIME_DEFAULT, "docker/default"):
        return ProfileChoice(RUNTIME_DEFAULT)
    if path == UNCONFINED:
        return ProfileChoice(UNCONFINED)
    if path.startswith(_LOCALHOST_PREFIX) and len(path) > len(_LOCALHOST_PREFIX):
        return ProfileChoice(LOCALHOST, path[len(_LOCALHOST_PREFIX) :])
    raise InvalidArgument(
        f"seccomp_profile_path {path!r} is not runtime/default, unconfined or localhost/PATH"
    )


def apparmor_choice(security_context: Mapping[str, Any]) -> ProfileChoice:
    """The AppArmor profile a security context asks for.

    ``apparmor`` (SecurityProfile) wins (a "localhost/" prefix on its ref is dropped). Otherwise the
    deprecated ``apparmor_profile``: "runtime/default", "unconfined", "localhost/<name>". Neither means the
    runtime's default profile (``explicit`` False), as CRI-O does.
    """
    if "apparmor" in security_context:
        choice = _security_profile("apparmor", security_context["apparmor"])
        if choice.kind == LOCALHOST:
            name = choice.ref.removeprefix(_LOCALHOST_PREFIX)
            if not name:
                raise InvalidArgument("apparmor: the Localhost profile name is empty")
            return ProfileChoice(LOCALHOST, name)
        return choice
    value = str(security_context.get("apparmor_profile") or "")
    if not value:
        return ProfileChoice(RUNTIME_DEFAULT, explicit=False)
    if value == RUNTIME_DEFAULT:
        return ProfileChoice(RUNTIME_DEFAULT)
    if value == UNCONFINED:
        return ProfileChoice(UNCONFINED)
    if value.startswith(_LOCALHOST_PREFIX) and len(value) > len(_LOCALHOST_PREFIX):
        return ProfileChoice(LOCALHOST, value[len(_LOCALHOST_PREFIX) :])
    raise InvalidArgument(f"apparmor_profile {value!r} is not runtime/default, unconfined or localhost/NAME")


def selinux_options(security_context: Mapping[str, Any]) -> dict[str, str]:
    """The non-empty fields (user, role, type, level) of ``selinux_options``; {} when none is set."""
    options = security_context.get("selinux_options") or {}
    if not isinstance(options, Mapping):
        raise InvalidArgument(f"selinux_options: {options!r} is not an SELinuxOption")
    return {name: str(options[name]) for name in _SELINUX_FIELDS if options.get(name)}
