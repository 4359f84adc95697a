"""OCI runtime handler plugin: runc (or any runc-compatible CLI such as crun) driven under conmon.

Implemented so far: the handler's features (``runc features``). Container lifecycle hooks arrive with the
container issue.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable
from typing import Any

from crio.core import proc
from crio.core.hookspecs import hookimpl
from crio.core.types import RuntimeFeatures, RuntimeHandler

RUNTIME_TYPE = "oci"
FEATURES_TIMEOUT = 10.0


async def _features(handler: RuntimeHandler) -> RuntimeFeatures:
    result = await proc.run([handler.runtime_path, "features"], timeout=FEATURES_TIMEOUT)
    details: dict[str, Any] = json.loads(result.stdout or b"{}")
    # crio enables neither rro mounts nor user namespaces in its specs yet, so it does not advertise them,
    # whatever the runtime binary itself could do (details carries the binary's own report).
    return RuntimeFeatures(recursive_read_only_mounts=False, user_namespaces=False, details=details)


@hookimpl
def crio_runtime_types() -> list[str]:
    """This plugin drives runc-compatible CLIs: runtime type "oci"."""
    return [RUNTIME_TYPE]


@hookimpl
def crio_runtime_features(handler: RuntimeHandler) -> Awaitable[RuntimeFeatures] | None:
    """Report the features of an "oci" handler from ``<runtime> features``."""
    if handler.runtime_type != RUNTIME_TYPE:
        return None
    return _features(handler)
