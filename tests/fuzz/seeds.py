"""Realistic seed documents for the image parsers: manifests, indexes and configs as registries serve them
(shapes of busybox, pause and a BuildKit multi-platform index with an attestation)."""

from __future__ import annotations

import json
from typing import Any

from crio.core.images import manifest as m


def _digest(n: int) -> str:
    return "sha256:" + f"{n:x}".rjust(64, "a")


DOCKER_MANIFEST: dict[str, Any] = {
    "schemaVersion": 2,
    "mediaType": m.DOCKER_V2S2,
    "config": {"mediaType": m.DOCKER_CONFIG, "size": 1457, "digest": _digest(1)},
    "layers": [
        {"mediaType": m.DOCKER_LAYER_GZIP, "size": 772788, "digest": _digest(2)},
        {"mediaType": m.DOCKER_FOREIGN_LAYER_GZIP, "size": 10, "digest": _digest(3)},
    ],
}

OCI_MANIFEST: dict[str, Any] = {
    "schemaVersion": 2,
    "mediaType": m.OCI_MANIFEST,
    "config": {"mediaType": m.OCI_CONFIG, "size": 1152, "digest": _digest(4)},
    "layers": [
        {
            "mediaType": m.OCI_LAYER_ZSTD,
            "size": 2048,
            "digest": _digest(5),
            "annotations": {"org.opencontainers.image.title": "rootfs"},
        },
        {
            "mediaType": m.OCI_LAYER,
            "size": 0,
            "digest": "sha512:" + "b" * 128,
            "urls": ["https://x.example/l"],
        },
    ],
    "annotations": {"org.opencontainers.image.created": "2024-01-02T03:04:05Z"},
}

OCI_INDEX: dict[str, Any] = {
    "schemaVersion": 2,
    "mediaType": m.OCI_INDEX,
    "manifests": [
        {
            "mediaType": m.OCI_MANIFEST,
            "size": 673,
            "digest": _digest(6),
            "platform": {"architecture": "amd64", "os": "linux"},
        },
        {
            "mediaType": m.OCI_MANIFEST,
            "size": 673,
            "digest": _digest(7),
            "platform": {"architecture": "arm", "os": "linux", "variant": "v7", "os.features": ["x"]},
        },
        {
            "mediaType": m.OCI_MANIFEST,
            "size": 566,
            "digest": _digest(8),
            "annotations": {"vnd.docker.reference.type": "attestation-manifest"},
            "platform": {"architecture": "unknown", "os": "unknown"},
        },
    ],
}

DOCKER_LIST: dict[str, Any] = {
    "schemaVersion": 2,
    "mediaType": m.DOCKER_LIST,
    "manifests": [
        {
            "mediaType": m.DOCKER_V2S2,
            "size": 527,
            "digest": _digest(9),
            "platform": {"architecture": "windows", "os": "windows", "os.version": "10.0.17763.1"},
        },
        {
            "mediaType": m.DOCKER_V2S2,
            "size": 527,
            "digest": _digest(10),
            "platform": {"architecture": "arm64", "os": "linux", "variant": "v8"},
        },
    ],
}

IMAGE_CONFIG: dict[str, Any] = {
    "architecture": "amd64",
    "os": "linux",
    "created": "2023-05-19T20:19:24.343359554Z",
    "config": {
        "User": "65535:65535",
        "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
        "Entrypoint": ["/pause"],
        "Cmd": None,
        "WorkingDir": "/",
        "Labels": {"org.opencontainers.image.source": "https://example.com/src"},
        "StopSignal": "SIGTERM",
        "ExposedPorts": {"80/tcp": {}},
        "Volumes": {"/data": {}},
    },
    "rootfs": {"type": "layers", "diff_ids": [_digest(11), _digest(12)]},
    "history": [{"created": "2023-05-19T20:19:24Z", "created_by": "ARG ARCH"}],
}

MANIFESTS = (DOCKER_MANIFEST, OCI_MANIFEST, OCI_INDEX, DOCKER_LIST)


def encoded(doc: Any) -> bytes:
    """A document as a registry would send it."""
    return json.dumps(doc, indent=3).encode()
