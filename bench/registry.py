"""The local test registry (hack/registry.sh, 127.0.0.1:5000) as the benchmarks use it: is an image there,
what are its layers, fetch its blobs once (curl) into a cache, and push tiny generated images.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import subprocess
import tarfile
from dataclasses import dataclass
from pathlib import Path

import httpx

from bench.common import REPO

REGISTRY = "127.0.0.1:5000"
BASE_URL = f"http://{REGISTRY}"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
MANIFEST_ACCEPT = ", ".join(
    (
        OCI_MANIFEST,
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.oci.image.index.v1+json",
    )
)
BLOB_CACHE = Path(os.environ.get("CRIO_BENCH_BLOBS", "/var/tmp/crio-bench-blobs"))


def ensure_running() -> None:
    """Start the registry (a no-op when it already answers)."""
    subprocess.run(["bash", str(REPO / "hack" / "registry.sh"), "start"], check=True, capture_output=True)


def has_image(repo: str, tag: str, client: httpx.Client | None = None) -> bool:
    """Whether the registry serves ``repo:tag`` (HEAD of the manifest)."""
    url = f"{BASE_URL}/v2/{repo}/manifests/{tag}"
    headers = {"Accept": MANIFEST_ACCEPT}
    if client is None:
        return httpx.head(url, headers=headers).status_code == 200
    return client.head(url, headers=headers).status_code == 200


@dataclass(frozen=True)
class Layer:
    """One layer descriptor of a manifest."""

    digest: str
    size: int
    media_type: str


def layers_of(repo: str, tag: str) -> list[Layer]:
    """The layer descriptors of ``repo:tag`` (a single-platform manifest)."""
    reply = httpx.get(f"{BASE_URL}/v2/{repo}/manifests/{tag}", headers={"Accept": MANIFEST_ACCEPT})
    reply.raise_for_status()
    manifest = reply.json()
    return [Layer(d["digest"], int(d["size"]), d["mediaType"]) for d in manifest["layers"]]


def fetch_blobs(repo: str, layers: list[Layer]) -> list[Path]:
    """Download each layer blob once with curl into :data:`BLOB_CACHE` (verified); return the paths."""
    BLOB_CACHE.mkdir(parents=True, exist_ok=True)
    paths = []
    for layer in layers:
        path = BLOB_CACHE / layer.digest.replace(":", "-")
        if not (path.exists() and path.stat().st_size == layer.size):
            partial = path.with_suffix(".partial")
            url = f"{BASE_URL}/v2/{repo}/blobs/{layer.digest}"
            subprocess.run(["curl", "-sSfL", "-o", str(partial), url], check=True)
            if _file_digest(partial) != layer.digest:
                partial.unlink()
                raise RuntimeError(f"{url}: digest mismatch")
            partial.rename(path)
        paths.append(path)
    return paths


def _file_digest(path: Path) -> str:
    hasher = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            hasher.update(chunk)
    return "sha256:" + hasher.hexdigest()


# ------------------------------------------------------------------------------------------ tiny images


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class TinyImage:
    """A one-layer image held in memory: a marker file naming the image."""

    layer: bytes
    config: bytes
    manifest: bytes


def tiny_image(marker: str) -> TinyImage:
    """A reproducible image whose only layer holds ``/etc/crio-bench-image`` containing ``marker``."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        etc = tarfile.TarInfo("etc")
        etc.type, etc.mode, etc.mtime = tarfile.DIRTYPE, 0o755, 0
        tar.addfile(etc)
        data = f"{marker}\n".encode()
        info = tarfile.TarInfo("etc/crio-bench-image")
        info.size, info.mode, info.mtime = len(data), 0o644, 0
        tar.addfile(info, io.BytesIO(data))
    uncompressed = raw.getvalue()
    layer = gzip.compress(uncompressed, mtime=0)
    config = json.dumps(
        {
            "created": "1970-01-01T00:00:00Z",
            "architecture": "amd64",
            "os": "linux",
            "config": {"Cmd": ["/bin/true"], "Labels": {"crio-bench": marker}},
            "rootfs": {"type": "layers", "diff_ids": [_digest(uncompressed)]},
        },
        sort_keys=True,
    ).encode()
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": _digest(config), "size": len(config)},
            "layers": [{"mediaType": OCI_LAYER_GZIP, "digest": _digest(layer), "size": len(layer)}],
        },
        sort_keys=True,
    ).encode()
    return TinyImage(layer, config, manifest)


def _push_blob(client: httpx.Client, repo: str, data: bytes) -> None:
    digest = _digest(data)
    if client.head(f"{BASE_URL}/v2/{repo}/blobs/{digest}").status_code == 200:
        return
    start = client.post(f"{BASE_URL}/v2/{repo}/blobs/uploads/")
    start.raise_for_status()
    location = start.headers["Location"]
    if location.startswith("/"):
        location = BASE_URL + location
    separator = "&" if "?" in location else "?"
    done = client.put(
        f"{location}{separator}digest={digest}",  # keep the upload's own query (_state=...)
        content=data,
        headers={"Content-Type": "application/octet-stream"},
    )
    done.raise_for_status()


def push_tiny_image(client: httpx.Client, repo: str, tag: str, image: TinyImage) -> None:
    """Push ``image`` as ``repo:tag`` through the distribution API (monolithic blob uploads)."""
    _push_blob(client, repo, image.layer)
    _push_blob(client, repo, image.config)
    reply = client.put(
        f"{BASE_URL}/v2/{repo}/manifests/{tag}",
        content=image.manifest,
        headers={"Content-Type": OCI_MANIFEST},
    )
    reply.raise_for_status()
