"""The offline infra ("pause") image: built from Debian's static catatonit, never pulled from a registry.

The image has one layer holding ``/pause`` (a copy of catatonit) and runs ``/pause -P`` (catatonit's pause
mode: sleep forever, reap nothing, exit on SIGTERM/SIGINT). Its content is deterministic, so every node
building it from the same catatonit gets the same image ID.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import logging
import shutil
import tarfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from crio.core.errors import NotFound
from crio.core.images.pull import pull_from_source
from crio.core.images.reference import parse_transport_reference

if TYPE_CHECKING:
    from crio.core.images.service import ImageService

log = logging.getLogger(__name__)

CATATONIT_CANDIDATES = (
    "/usr/bin/catatonit",
    "/usr/libexec/catatonit/catatonit",
    "/usr/libexec/podman/catatonit",
)
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
# A fixed creation time keeps the image ID stable across builds.
CREATED = "1970-01-01T00:00:00Z"


def find_catatonit() -> Path:
    """Return the host's catatonit binary; raise NotFound naming the Debian package otherwise."""
    for candidate in (shutil.which("catatonit"), *CATATONIT_CANDIDATES):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    raise NotFound("cannot build the pause image: catatonit not found (apt-get install catatonit)")


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def layer_tar(binary: bytes) -> bytes:
    """A reproducible tar holding ``/pause`` (mode 0755, root-owned, mtime 0)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo("pause")
        info.size = len(binary)
        info.mode = 0o755
        info.mtime = 0
        tar.addfile(info, io.BytesIO(binary))
    return buffer.getvalue()


@dataclass(frozen=True)
class BuiltImage:
    """An image held in memory: its manifest, config and blobs by digest."""

    manifest: bytes
    config_digest: str
    blobs: dict[str, bytes]


def build_pause_image(catatonit: Path) -> BuiltImage:
    """Build the pause image from a catatonit binary."""
    layer = layer_tar(catatonit.read_bytes())
    config = json.dumps(
        {
            "created": CREATED,
            "architecture": "amd64",
            "os": "linux",
            "config": {
                "Entrypoint": ["/pause", "-P"],
                "WorkingDir": "/",
                "Labels": {"io.crio.pause": "catatonit"},
            },
            "rootfs": {"type": "layers", "diff_ids": [_digest(layer)]},
            "history": [{"created": CREATED, "created_by": f"crio: catatonit from {catatonit} as /pause"}],
        },
        sort_keys=True,
        separators=(",", ":"),
    ).encode()
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": _digest(config), "size": len(config)},
            "layers": [{"mediaType": OCI_LAYER, "digest": _digest(layer), "size": len(layer)}],
        },
        sort_keys=True,
        separators=(",", ":"),
    ).encode()
    return BuiltImage(manifest, _digest(config), {_digest(config): config, _digest(layer): layer})


class MemorySource:
    """An :class:`crio.core.types.ImageSource` serving a :class:`BuiltImage` from memory."""

    def __init__(self, image: BuiltImage, description: str) -> None:
        self.image = image
        self._description = description

    @property
    def description(self) -> str:
        """Where the image comes from."""
        return self._description

    async def get_manifest(self, digest: str | None = None) -> tuple[bytes, str]:
        """Return the one manifest."""
        if digest not in (None, _digest(self.image.manifest)):
            raise NotFound(f"{self._description}: no manifest {digest}")
        return self.image.manifest, OCI_MANIFEST

    async def get_blob(self, digest: str, size: int) -> AsyncIterator[bytes]:
        """Yield a blob in one chunk."""
        try:
            yield self.image.blobs[digest]
        except KeyError:
            raise NotFound(f"{self._description}: no blob {digest}") from None

    async def close(self) -> None:
        """Nothing to release."""


async def ensure_pause_image(images: ImageService, name: str) -> str | None:
    """Build the pause image and store it under ``name`` unless an image of that name exists.

    Returns the image ID, or None when it cannot be built (logged; pods cannot start until it exists).
    """
    existing = await images.status(name)
    if existing is not None:
        return existing.id
    try:
        built = build_pause_image(await asyncio.to_thread(find_catatonit))
    except NotFound as exc:
        log.error("%s", exc)
        return None
    ref = parse_transport_reference(name)
    source = MemorySource(built, f"crio's offline pause image for {ref.name}")
    image_id = await pull_from_source(images.access, source, ref, images.tmp_dir())
    log.info("built the pause image %s as %s from catatonit", ref.name, image_id)
    return image_id
