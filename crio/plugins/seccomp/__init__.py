"""Security plugin: seccomp profiles (RuntimeDefault, Localhost, Unconfined). Needs ``crio[seccomp]``.

Which profile: the CRI ``seccomp`` SecurityProfile, else the deprecated ``seccomp_profile_path`` (see
:func:`crio.core.security_profiles.seccomp_choice`): a nil profile is RuntimeDefault when
``crio.runtime.seccomp_use_default_when_empty`` is true (CRI-O's default), else unconfined as the CRI says;
an empty one is RuntimeDefault; privileged containers (and pods) get none whatever they ask. RuntimeDefault
is crio's built-in profile (:mod:`.default_profile`) or the file ``crio.runtime.seccomp_profile`` names;
Localhost profiles are read from absolute host paths (:mod:`.localhost`). A profile is rendered for the
container's bounding capabilities and the host architecture (:mod:`.profile`) and dry-run through the host's
libseccomp (:mod:`.libseccomp`) before it lands in ``linux.seccomp``; parsed profiles and dry runs are cached
by content. Pods get the profile of their own security context on their infra container.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import threading
from collections.abc import Awaitable, Mapping
from typing import Any

import pyseccomp  # noqa: F401  # the optional dependency: its absence skips this plugin

from crio.core.config import Config
from crio.core.errors import CrioError, InvalidArgument
from crio.core.hookspecs import hookimpl
from crio.core.security_profiles import LOCALHOST, UNCONFINED, seccomp_choice
from crio.core.types import SecurityRequest
from crio.plugins.seccomp import libseccomp
from crio.plugins.seccomp.default_profile import default_profile
from crio.plugins.seccomp.localhost import ProfileCache, decode_profile, read_profile_file
from crio.plugins.seccomp.profile import Host, Profile, parse_profile, render

log = logging.getLogger(__name__)

CONFIG_KEY = "crio.runtime.seccomp_profile"
DEFAULT_WHEN_EMPTY_KEY = "crio.runtime.seccomp_use_default_when_empty"
BUILTIN = "builtin"
DRY_RUN_CACHE_ENTRIES = 128


class SeccompState:
    """The plugin's state: the RuntimeDefault profile, the localhost profile cache, the dry runs done."""

    def __init__(self) -> None:
        self.host = Host.current()
        self.default = parse_profile(default_profile())
        self.default_source = BUILTIN
        self.profiles = ProfileCache()
        self.default_when_empty = False  # the CRI's meaning until configured
        self._dry_runs: dict[str, list[str]] = {}
        self._lock = threading.Lock()

    def configure(self, path: str) -> None:
        """Use the profile file ``path`` as RuntimeDefault ("" is the built-in profile)."""
        if not path:
            self.default, self.default_source = parse_profile(default_profile()), BUILTIN
            return
        profile = decode_profile(read_profile_file(path), path)
        self._checked(render(profile, (), self.host))
        self.default, self.default_source = profile, path

    def _checked(self, seccomp: Mapping[str, Any]) -> None:
        """Dry-run ``seccomp`` through libseccomp once per distinct filter; log unknown syscall names."""
        key = hashlib.sha256(json.dumps(seccomp, sort_keys=True).encode()).hexdigest()
        with self._lock:
            if key in self._dry_runs:
                return
        unknown = libseccomp.dry_run(seccomp)
        if unknown:
            log.debug("seccomp: syscalls unknown to this libseccomp are ignored: %s", ", ".join(unknown))
        with self._lock:
            if len(self._dry_runs) >= DRY_RUN_CACHE_ENTRIES:
                self._dry_runs.clear()
            self._dry_runs[key] = unknown

    def profile_for(self, request: SecurityRequest) -> Profile | None:
        """The profile ``request`` gets (None: unconfined); reads a localhost profile file (blocking)."""
        if request.privileged:
            return None
        choice = seccomp_choice(request.security_context, self.default_when_empty)
        if choice.kind == UNCONFINED:
            return None
        if choice.kind == LOCALHOST:
            return self.profiles.load(choice.ref)
        return self.default

    def seccomp_for(self, request: SecurityRequest, spec: Mapping[str, Any]) -> dict[str, Any] | None:
        """OCI ``linux.seccomp`` for ``request`` with the bounding capabilities of ``spec`` (blocking)."""
        profile = self.profile_for(request)
        if profile is None:
            return None
        caps = spec.get("process", {}).get("capabilities", {}).get("bounding", [])
        seccomp = render(profile, caps, self.host)
        self._checked(seccomp)
        return seccomp


STATE = SeccompState()


def kernel_has_seccomp(status_path: str = "/proc/self/status") -> bool:
    """Return True when the kernel reports seccomp support for processes."""
    try:
        with open(status_path, encoding="utf-8") as status:
            return any(line.startswith("Seccomp:") for line in status)
    except OSError:
        return False


@hookimpl
def crio_plugin_unavailable(config: Config) -> str | None:
    """Skip the plugin on kernels without seccomp."""
    return None if kernel_has_seccomp() else "the kernel has no seccomp support"


@hookimpl
def crio_configure(config: Config) -> None:
    """Load ``crio.runtime.seccomp_profile`` (a broken file refuses the configuration) and note what a nil
    profile means (``crio.runtime.seccomp_use_default_when_empty``)."""
    STATE.default_when_empty = bool(config.get(DEFAULT_WHEN_EMPTY_KEY))
    path = str(config.get(CONFIG_KEY) or "")
    try:
        STATE.configure(path)
    except CrioError as exc:  # a missing, unreadable or malformed file: the daemon must not start on it
        raise InvalidArgument(f"{CONFIG_KEY}: {exc}") from None
    empty = "RuntimeDefault" if STATE.default_when_empty else "unconfined"
    log.info("seccomp: RuntimeDefault profile is %s; no profile means %s", STATE.default_source, empty)


async def _validate(request: SecurityRequest) -> None:
    await asyncio.to_thread(STATE.profile_for, request)


@hookimpl
def crio_security_validate(request: SecurityRequest) -> Awaitable[None] | None:
    """Refuse a bad seccomp request early: a localhost profile that is missing, unreadable or malformed."""
    if request.privileged or seccomp_choice(request.security_context).kind != LOCALHOST:
        return None
    return _validate(request)


async def _adjust(request: SecurityRequest, spec: dict[str, Any]) -> None:
    seccomp = await asyncio.to_thread(STATE.seccomp_for, request, spec)
    linux = spec.setdefault("linux", {})
    if seccomp is None:
        linux.pop("seccomp", None)
    else:
        linux["seccomp"] = seccomp


@hookimpl
def crio_security_adjust_spec(request: SecurityRequest, spec: dict[str, Any]) -> Awaitable[None]:
    """Set (or clear) ``linux.seccomp`` of the pod's or container's spec."""
    return _adjust(request, spec)


@hookimpl
def crio_security_features() -> Mapping[str, Any]:
    """seccomp is enabled; where RuntimeDefault comes from."""
    return {"seccomp": {"enabled": True, "default_profile": STATE.default_source}}
