"""Seed configuration files for the image configuration parsers: registries.conf (v2 and v1),
containers-registries.d YAML and containers-policy.json, as a node would carry them."""

from __future__ import annotations

import base64
from typing import Any

REGISTRIES_CONF: dict[str, Any] = {
    "unqualified-search-registries": ["registry.fedoraproject.org", "quay.io", "docker.io"],
    "short-name-mode": "enforcing",
    "credential-helpers": ["containers-auth.json"],
    "registry": [
        {
            "prefix": "registry.k8s.io",
            "location": "127.0.0.1:5000",
            "insecure": True,
            "mirror": [{"location": "mirror.example.com:443/k8s", "pull-from-mirror": "digest-only"}],
        },
        {"prefix": "*.example.org", "location": "example.net/mirror", "blocked": False},
        {
            "location": "quay.io/crio-test",
            "mirror-by-digest-only": True,
            "mirror": [{"location": "[::1]:5000"}],
        },
        {"prefix": "blocked.io", "location": "blocked.io", "blocked": True},
    ],
    "aliases": {"fedora": "registry.fedoraproject.org/fedora", "pause": "registry.k8s.io/pause"},
}

REGISTRIES_CONF_V1: dict[str, Any] = {
    "registries": {
        "search": {"registries": ["docker.io", "quay.io"]},
        "insecure": {"registries": ["127.0.0.1:5000"]},
        "block": {"registries": ["blocked.io"]},
    }
}

REGISTRIES_D: dict[str, Any] = {
    "default-docker": {"lookaside": "file:///var/lib/containers/sigstore"},
    "docker": {
        "registry.access.redhat.com": {
            "lookaside": "https://access.redhat.com/webassets/docker/content/sigstore"
        },
        "quay.io/crio-test": {
            "lookaside": "http://127.0.0.1:8000/sigs",
            "lookaside-staging": "file:///tmp/staging",
            "use-sigstore-attachments": True,
        },
        "*.example.com": {"sigstore": "https://sigs.example.com"},
    },
}

_KEY_DATA = base64.b64encode(b"\x99\x00\x0d\x04fake public key").decode()
POLICY: dict[str, Any] = {
    "default": [{"type": "insecureAcceptAnything"}],
    "transports": {
        "docker": {
            "registry.access.redhat.com": [
                {
                    "type": "signedBy",
                    "keyType": "GPGKeys",
                    "keyPaths": ["/etc/pki/rpm-gpg/RPM-GPG-KEY-redhat-release", "/etc/pki/b.gpg"],
                }
            ],
            "quay.io/crio-test": [
                {
                    "type": "sigstoreSigned",
                    "keyData": _KEY_DATA,
                    "signedIdentity": {
                        "type": "remapIdentity",
                        "prefix": "quay.io/crio-test",
                        "signedPrefix": "quay.io/upstream",
                    },
                }
            ],
            "docker.io/library/busybox:1.36": [
                {
                    "type": "signedBy",
                    "keyType": "GPGKeys",
                    "keyData": _KEY_DATA,
                    "signedIdentity": {
                        "type": "exactRepository",
                        "dockerRepository": "docker.io/library/busybox",
                    },
                }
            ],
            "*.example.com": [{"type": "reject"}],
            "": [{"type": "insecureAcceptAnything"}],
        },
        "oci": {
            "/var/lib/images": [{"type": "signedBaseLayer", "baseLayerIdentity": {"type": "matchRepository"}}]
        },
        "docker-daemon": {"": [{"type": "insecureAcceptAnything"}]},
    },
}
