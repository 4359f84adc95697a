"""The ``oci`` transport: an OCI image layout directory (``oci-layout``, ``index.json``, ``blobs/``).

``/dir:name`` picks the index entry whose ``org.opencontainers.image.ref.name`` annotation is ``name``;
``/dir`` alone needs an index with exactly one entry. The layout code reads its files through
:class:`LayoutFiles`, so ``oci-archive`` (a tar of a layout) reuses it.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator
from typing import Protocol

from crio.core.errors import InvalidArgument, NotFound
from crio.core.images.manifest import (
    MAX_MANIFEST_SIZE,
    OCI_INDEX,
    Descriptor,
    ManifestList,
    detect_media_type,
    parse_manifest,
)
from crio.core.images.reference import split_path_reference, validate_digest
from crio.core.types import ImageReference, PullOptions
from crio.plugins.image_transports.common import guard_size, read_small, stream_file

REF_NAME = "org.opencontainers.image.ref.name"
LAYOUT_VERSION = "1.0.0"


class LayoutFiles(Protocol):
    """Read access to the files of an image layout, by path relative to its root."""

    async def read(self, name: str, limit: int, what: str) -> bytes:
        """A whole small file (NotFound when absent, InvalidArgument over ``limit``)."""
        ...

    def stream(self, name: str, what: str) -> AsyncIterator[bytes]:
        """A file's bytes in ~1 MiB chunks (NotFound when absent)."""
        ...

    async def close(self) -> None:
        """Release what the files hold (temporary copies, handles)."""
        ...


class DirectoryFiles:
    """The files of a layout directory."""

    def __init__(self, root: str) -> None:
        self.root = root

    def _path(self, name: str) -> str:
        return os.path.join(self.root, name)

    async def read(self, name: str, limit: int, what: str) -> bytes:
        """Read ``name`` in a worker thread."""
        return await asyncio.to_thread(read_small, self._path(name), limit, what)

    async def _stream(self, name: str, what: str) -> AsyncIterator[bytes]:
        path = self._path(name)
        try:
            size = (await asyncio.to_thread(os.stat, path)).st_size
        except FileNotFoundError:
            raise NotFound(f"{what} not found ({path})") from None
        async for chunk in stream_file(path, 0, size, what):
            yield chunk

    def stream(self, name: str, what: str) -> AsyncIterator[bytes]:
        """Stream ``name`` from the directory."""
        return self._stream(name, what)

    async def close(self) -> None:
        """Nothing to release."""


def blob_path(digest: str, what: str) -> str:
    """``blobs/<algorithm>/<hex>`` for a validated digest (so no path tricks get through)."""
    validate_digest(digest, what)
    algorithm, _, hex_part = digest.partition(":")
    return f"blobs/{algorithm}/{hex_part}"


def _choose(index: ManifestList, ref: str, where: str) -> Descriptor:
    if ref:
        found = [m for m in index.manifests if m.annotations.get(REF_NAME) == ref]
        if not found:
            raise NotFound(f"{where}: no image named {ref!r} in index.json")
        if len(found) > 1:
            raise InvalidArgument(f"{where}: more than one image named {ref!r} in index.json")
        return found[0]
    if len(index.manifests) != 1:
        raise InvalidArgument(
            f"{where}: index.json has {len(index.manifests)} images; name one with {where}:NAME"
        )
    return index.manifests[0]


class LayoutSource:
    """An image in an OCI layout read through ``files``."""

    def __init__(self, files: LayoutFiles, where: str, chosen: Descriptor) -> None:
        self.files = files
        self.where = where
        self.chosen = chosen

    @property
    def description(self) -> str:
        """The layout and the manifest chosen in it."""
        return f"{self.where} (manifest {self.chosen.digest})"

    async def get_manifest(self, digest: str | None = None) -> tuple[bytes, str]:
        """The chosen manifest (``digest`` None) or the manifest blob ``digest``."""
        wanted = digest or self.chosen.digest
        what = f"{self.where}: manifest {wanted}"
        data = await self.files.read(blob_path(wanted, what), MAX_MANIFEST_SIZE, what)
        declared = self.chosen.media_type if digest is None else ""
        try:
            return data, detect_media_type(data, declared)
        except InvalidArgument as exc:
            raise InvalidArgument(f"{what}: {exc}") from None

    def get_blob(self, digest: str, size: int) -> AsyncIterator[bytes]:
        """Stream ``blobs/<alg>/<hex>``, never more than ``size`` bytes."""
        what = f"{self.where}: blob {digest}"
        return guard_size(self.files.stream(blob_path(digest, what), what), digest, size)

    async def close(self) -> None:
        """Release the files."""
        await self.files.close()


async def open_layout(files: LayoutFiles, where: str, ref: str) -> LayoutSource:
    """Check ``oci-layout``, read ``index.json`` and choose the image ``ref`` names (or the only one)."""
    marker = await files.read("oci-layout", 64 * 1024, f"{where}: oci-layout")
    try:
        version = json.loads(marker).get("imageLayoutVersion")
    except (ValueError, AttributeError, RecursionError):
        version = None
    if version != LAYOUT_VERSION:
        raise InvalidArgument(f"{where}: unsupported oci-layout (imageLayoutVersion {version!r})")
    data = await files.read("index.json", MAX_MANIFEST_SIZE, f"{where}: index.json")
    try:
        index = parse_manifest(data, OCI_INDEX)
    except InvalidArgument as exc:
        raise InvalidArgument(f"{where}: index.json: {exc}") from None
    if not isinstance(index, ManifestList):
        raise InvalidArgument(f"{where}: index.json is not an image index")
    return LayoutSource(files, where, _choose(index, ref, where))


async def open_oci(reference: ImageReference, options: PullOptions) -> LayoutSource:
    """Open ``oci:/dir[:name]``."""
    del options  # no credentials or registries for a local directory
    path, ref = split_path_reference(reference.name)
    where = f"oci:{path}"
    if not os.path.isdir(path):
        raise NotFound(f"{where}: no such directory")
    return await open_layout(DirectoryFiles(path), where, ref)
