"""Security plugin: AppArmor profiles for pods and containers (active only where the kernel has AppArmor).

``runtime/default`` (also when a request names nothing) is ``crio.runtime.apparmor_profile``; when that is
crio's own ``crio-default`` and the kernel does not have it yet, crio loads it with ``apparmor_parser``.
``localhost/NAME`` must already be loaded, else CreateContainer (or RunPodSandbox) fails; ``unconfined``
and privileged requests get no profile. Both the ``apparmor`` SecurityProfile and the deprecated
``apparmor_profile`` string are read, the former winning
(:func:`crio.core.security_profiles.apparmor_choice`). The logic lives in :mod:`.profiles`, pure.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Mapping
from pathlib import Path
from typing import Any

from crio.core import proc
from crio.core.config import Config
from crio.core.errors import FailedPrecondition
from crio.core.hookspecs import hookimpl
from crio.core.types import SecurityRequest
from crio.plugins.apparmor.profiles import (
    DEFAULT_PROFILE,
    default_profile_text,
    parse_loaded,
    profile_for,
    require_loaded,
)

ENABLED_PARAMETER = Path("/sys/module/apparmor/parameters/enabled")
LOADED_PROFILES = Path("/sys/kernel/security/apparmor/profiles")
CONFIG_KEY = "crio.runtime.apparmor_profile"
PARSER = "apparmor_parser"
PARSER_TIMEOUT = 60.0


class AppArmorState:
    """The configured default profile name and whether crio's own profile has been loaded."""

    def __init__(self) -> None:
        self.default = DEFAULT_PROFILE
        self._load_lock: asyncio.Lock | None = None

    async def loaded(self) -> set[str]:
        """The profiles the kernel has loaded."""
        try:
            text = await asyncio.to_thread(LOADED_PROFILES.read_text)
        except OSError as exc:
            raise FailedPrecondition(f"cannot read the loaded AppArmor profiles: {exc}") from None
        return parse_loaded(text)

    async def ensure(self, name: str) -> None:
        """Make sure ``name`` is loaded: crio's own default profile is loaded on first use."""
        if name in await self.loaded():
            return
        if name != DEFAULT_PROFILE:
            require_loaded(name, ())
        if self._load_lock is None:
            self._load_lock = asyncio.Lock()
        async with self._load_lock:
            if name in await self.loaded():
                return
            try:
                source = default_profile_text(name).encode()
                await proc.run([PARSER, "-Kr"], stdin=source, timeout=PARSER_TIMEOUT)
            except (proc.ProcessError, TimeoutError) as exc:
                raise FailedPrecondition(f"cannot load AppArmor profile {name}: {exc}") from None


STATE = AppArmorState()


def apparmor_enabled(parameter: Path = ENABLED_PARAMETER) -> bool:
    """Return True when the kernel's AppArmor module is enabled."""
    try:
        return parameter.read_text().strip() == "Y"
    except OSError:
        return False


@hookimpl
def crio_plugin_unavailable(config: Config) -> str | None:
    """Skip the plugin where the kernel has no AppArmor."""
    return None if apparmor_enabled() else f"AppArmor is not enabled in the kernel ({ENABLED_PARAMETER})"


@hookimpl
def crio_configure(config: Config) -> None:
    """Take the runtime/default profile name from ``crio.runtime.apparmor_profile``."""
    STATE.default = str(config.get(CONFIG_KEY) or DEFAULT_PROFILE)


@hookimpl
def crio_security_validate(request: SecurityRequest) -> Awaitable[None] | None:
    """The request's profile must be loaded (crio's default one is loaded on demand)."""
    name = profile_for(request, STATE.default)
    return None if name is None else STATE.ensure(name)


@hookimpl
def crio_security_adjust_spec(request: SecurityRequest, spec: dict[str, Any]) -> None:
    """Set ``process.apparmorProfile`` (removed for unconfined and privileged requests)."""
    name = profile_for(request, STATE.default)
    process = spec.setdefault("process", {})
    if name is None:
        process.pop("apparmorProfile", None)
    else:
        process["apparmorProfile"] = name


@hookimpl
def crio_security_features() -> Mapping[str, Any]:
    """AppArmor is enabled; the runtime/default profile's name."""
    return {"apparmor": {"enabled": True, "default_profile": STATE.default}}
