"""The container spec's annotations: crio's own, plus the CRI ones a runtime will not interpret."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

CONTAINER_TYPE = "io.kubernetes.cri.container-type"
SANDBOX_ID = "io.kubernetes.cri.sandbox-id"
SANDBOX_NAME = "io.kubernetes.cri.sandbox-name"
SANDBOX_NAMESPACE = "io.kubernetes.cri.sandbox-namespace"
SANDBOX_UID = "io.kubernetes.cri.sandbox-uid"
CONTAINER_NAME = "io.kubernetes.cri.container-name"
IMAGE_NAME = "io.kubernetes.cri.image-name"

# Keys an OCI runtime (runc, crun, systemd through runc) or crio itself gives meaning to: a pod must not
# smuggle settings through them (CVE-2024-3154: org.systemd.property.ExecStopPost ran a host command).
DENIED_PREFIXES = (
    "org.systemd.property.",
    "run.oci.",
    "io.kubernetes.cri-o.",
    "io.kubernetes.cri.",
    "org.criu.",
    "module.wasm.image/",
)
DENIED_KEYS = ("bundle",)
DENIED_SUFFIXES = (".crio.io",)


def is_denied(key: str) -> bool:
    """Whether a CRI annotation key is one a runtime or crio interprets (compared case-insensitively)."""
    lowered = key.lower()
    return lowered in DENIED_KEYS or lowered.startswith(DENIED_PREFIXES) or lowered.endswith(DENIED_SUFFIXES)


def is_allowed(key: str, allowed: Sequence[str]) -> bool:
    """Whether a runtime handler's ``allowed_annotations`` let ``key`` through (case-insensitively).

    An entry allows its own key and its dotted sub-keys (``io.kubernetes.cri-o.UnifiedCgroup`` allows
    ``io.kubernetes.cri-o.UnifiedCgroup.ctr``); an entry ending in "." or "/" is a prefix. Nothing else
    matches: ``...UnifiedCgroupX`` is not ``...UnifiedCgroup`` (CVE-2023-6476 came from such a mix-up).
    """
    lowered = key.lower()
    for entry in allowed:
        wanted = entry.strip().lower()
        if not wanted:
            continue
        if lowered == wanted or lowered.startswith(wanted + "."):
            return True
        if wanted.endswith((".", "/")) and lowered.startswith(wanted):
            return True
    return False


def split_annotations(
    annotations: Mapping[str, str], allowed: Sequence[str] = ()
) -> tuple[dict[str, str], list[str]]:
    """The CRI annotations that may go into the spec, and the sorted keys that were dropped.

    Runtime-interpreted keys are dropped unless the runtime handler's ``allowed`` list lets them through.
    """

    def dropped_key(key: str) -> bool:
        return is_denied(key) and not is_allowed(key, allowed)

    kept = {str(k): str(v) for k, v in annotations.items() if not dropped_key(str(k))}
    dropped = sorted(str(k) for k in annotations if dropped_key(str(k)))
    return kept, dropped
