"""A third-party crio plugin: reports a security feature that names the configured runtime."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from crio.core.config import Config
from crio.core.hookspecs import hookimpl

GREETING: dict[str, str] = {}


@hookimpl
def crio_configure(config: Config) -> None:
    """Remember the default runtime handler's name, to prove the hook got the real config."""
    GREETING["default_runtime"] = config.default_runtime


@hookimpl
def crio_security_features() -> Mapping[str, Any]:
    """Appear in the Status verbose info under securityFeatures."""
    return {"hello": {"greeting": "hello from an out-of-tree plugin", **GREETING}}
