"""The ``oci-archive`` and ``docker-archive`` transports: images in tar files, read in place.

The tar's member headers are indexed once; each blob is then streamed straight from its offset in the
file (each stream with its own file handle, so layers can be read in parallel). A compressed archive
(gzip, bzip2, xz) is first decompressed into a temporary file, removed again on close.

``docker-archive`` is ``docker save``'s format (``manifest.json`` with ``Config``, ``RepoTags`` and
``Layers``); a Docker schema 2 manifest is synthesized for the chosen image so the core treats every
transport alike.
"""

from __future__ import annotations

import asyncio
import bz2
import gzip
import hashlib
import json
import lzma
import os
import posixpath
import re
import shutil
import tarfile
import tempfile
from collections.abc import AsyncIterator
from typing import Any

from crio.core.errors import InvalidArgument, NotFound
from crio.core.images.manifest import (
    DOCKER_CONFIG,
    DOCKER_LAYER,
    DOCKER_LAYER_GZIP,
    DOCKER_V2S2,
    MAX_CONFIG_SIZE,
    MAX_MANIFEST_SIZE,
    manifest_digest,
    parse_config,
)
from crio.core.images.reference import parse_docker_reference, split_path_reference, validate_digest
from crio.core.types import ImageReference, PullOptions
from crio.plugins.image_transports.common import CHUNK_SIZE, guard_size, stream_file
from crio.plugins.image_transports.oci_layout import LayoutSource, open_layout

_MAX_LINK_DEPTH = 16
_DECOMPRESSORS = {b"\x1f\x8b": gzip.open, b"BZh": bz2.open, b"\xfd7zXZ\x00": lzma.open}
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_BLOB_PATH_RE = re.compile(r"blobs/sha256/([a-f0-9]{64})")


def _normalize(name: str) -> str:
    name = posixpath.normpath("/" + name).lstrip("/")
    return "" if name == "." else name


def _open_decompressed(path: str, opener: Any, where: str) -> tuple[str, str]:
    """Decompress ``path`` into a new temporary directory; return (directory, file)."""
    tmpdir = tempfile.mkdtemp(prefix="crio-archive-")
    target = os.path.join(tmpdir, "archive.tar")
    try:
        with opener(path, "rb") as src, open(target, "wb") as dst:
            shutil.copyfileobj(src, dst, CHUNK_SIZE)
    except (OSError, EOFError, lzma.LZMAError) as exc:
        shutil.rmtree(tmpdir, ignore_errors=True)
        raise InvalidArgument(f"{where}: cannot decompress the archive: {exc}") from None
    except BaseException:
        shutil.rmtree(tmpdir, ignore_errors=True)
        raise
    return tmpdir, target


class TarFiles:
    """The members of a tar file, readable in place by name (links inside the archive are followed)."""

    def __init__(self, path: str, where: str) -> None:
        self.where = where
        self.path = path
        self.tmpdir = ""
        self.members: dict[str, tarfile.TarInfo] = {}

    def index(self) -> None:
        """Read every member header (blocking; run it in a worker thread)."""
        try:
            with open(self.path, "rb") as handle:
                magic = handle.read(6)
        except FileNotFoundError:
            raise NotFound(f"{self.where}: no such file") from None
        except OSError as exc:
            raise InvalidArgument(f"{self.where}: cannot read: {exc.strerror}") from None
        if magic.startswith(_ZSTD_MAGIC):
            raise InvalidArgument(f"{self.where}: zstd-compressed archives are unsupported; decompress it")
        for prefix, opener in _DECOMPRESSORS.items():
            if magic.startswith(prefix):
                self.tmpdir, self.path = _open_decompressed(self.path, opener, self.where)
                break
        try:
            with tarfile.open(self.path, "r:") as tar:
                for member in tar:
                    self.members[_normalize(member.name)] = member
        except (tarfile.TarError, OSError) as exc:
            raise InvalidArgument(f"{self.where}: not a readable tar archive: {exc}") from None

    def member(self, name: str, what: str) -> tarfile.TarInfo:
        """The regular-file member for ``name``, after following symbolic and hard links."""
        current = _normalize(name)
        for _ in range(_MAX_LINK_DEPTH):
            member = self.members.get(current)
            if member is None:
                raise NotFound(f"{what} not found in {self.where} ({name})")
            if member.issym():
                current = _normalize(posixpath.join(posixpath.dirname(current), member.linkname))
            elif member.islnk():
                current = _normalize(member.linkname)
            elif member.isreg() and not member.issparse():
                return member
            else:
                raise InvalidArgument(f"{what}: {name} in {self.where} is not a regular file")
        raise InvalidArgument(f"{what}: {name} in {self.where}: too many levels of links")

    def read_member(self, member: tarfile.TarInfo, limit: int, what: str) -> bytes:
        """A member's bytes, refusing more than ``limit`` (blocking)."""
        if member.size > limit:
            raise InvalidArgument(f"{what} too large: {member.size} bytes (limit {limit})")
        with open(self.path, "rb") as handle:
            handle.seek(member.offset_data)
            data = handle.read(member.size)
        if len(data) != member.size:
            raise InvalidArgument(f"{what}: {self.where} is truncated")
        return data

    async def read(self, name: str, limit: int, what: str) -> bytes:
        """Read a small member in a worker thread."""
        return await asyncio.to_thread(self.read_member, self.member(name, what), limit, what)

    def stream(self, name: str, what: str) -> AsyncIterator[bytes]:
        """Stream a member's bytes from its offset in the archive."""
        member = self.member(name, what)
        return stream_file(self.path, member.offset_data, member.size, what)

    def head(self, name: str, length: int) -> bytes:
        """The first ``length`` bytes of a member (blocking)."""
        member = self.member(name, name)
        with open(self.path, "rb") as handle:
            handle.seek(member.offset_data)
            return handle.read(min(length, member.size))

    def sha256(self, name: str) -> str:
        """The sha256 digest of a member's bytes (blocking)."""
        member = self.member(name, name)
        hasher = hashlib.sha256()
        with open(self.path, "rb") as handle:
            handle.seek(member.offset_data)
            left = member.size
            while left > 0:
                chunk = handle.read(min(CHUNK_SIZE, left))
                if not chunk:
                    raise InvalidArgument(f"{name}: {self.where} is truncated")
                hasher.update(chunk)
                left -= len(chunk)
        return "sha256:" + hasher.hexdigest()

    async def close(self) -> None:
        """Remove the decompressed copy, if one was made."""
        if self.tmpdir:
            await asyncio.to_thread(shutil.rmtree, self.tmpdir, True)
            self.tmpdir = ""


async def _indexed(path: str, where: str) -> TarFiles:
    files = TarFiles(path, where)
    try:
        await asyncio.to_thread(files.index)
    except BaseException:
        await files.close()
        raise
    return files


async def open_oci_archive(reference: ImageReference, options: PullOptions) -> LayoutSource:
    """Open ``oci-archive:/file.tar[:name]``: an OCI layout inside a tar file."""
    del options
    path, ref = split_path_reference(reference.name)
    where = f"oci-archive:{path}"
    files = await _indexed(path, where)
    try:
        return await open_layout(files, where, ref)
    except BaseException:
        await files.close()
        raise


# --------------------------------------------------------------------------------------------------
# docker-archive
# --------------------------------------------------------------------------------------------------


def _pick_image(entries: list[Any], ref: str, where: str) -> dict[str, Any]:
    if ref.startswith("@"):
        number = int(ref[1:])
        if number >= len(entries):
            raise NotFound(f"{where}: no image @{number} (the archive has {len(entries)})")
        return dict(entries[number])
    if ref:
        wanted = str(parse_docker_reference(ref))
        for entry in entries:
            for tag in entry.get("RepoTags") or []:
                try:
                    if str(parse_docker_reference(str(tag))) == wanted:
                        return dict(entry)
                except InvalidArgument:
                    continue
        raise NotFound(f"{where}: no image tagged {ref!r} in manifest.json")
    if len(entries) != 1:
        raise InvalidArgument(f"{where}: the archive has {len(entries)} images; name one with {where}:NAME")
    return dict(entries[0])


class DockerArchiveSource:
    """One image of a ``docker save`` archive, with a synthesized Docker schema 2 manifest."""

    def __init__(self, files: TarFiles, where: str, manifest: bytes, blobs: dict[str, str], config: bytes):
        self.files = files
        self.where = where
        self.manifest = manifest
        self.blobs = blobs  # digest → member name
        self.config = config

    @property
    def description(self) -> str:
        """The archive and the synthesized manifest's digest."""
        return f"{self.where} (manifest {manifest_digest(self.manifest)})"

    async def get_manifest(self, digest: str | None = None) -> tuple[bytes, str]:
        """The synthesized manifest (the only one the archive has)."""
        if digest is not None and digest != manifest_digest(self.manifest):
            raise NotFound(f"{self.where}: no manifest {digest}")
        return self.manifest, DOCKER_V2S2

    async def _config_chunks(self) -> AsyncIterator[bytes]:
        yield self.config

    def get_blob(self, digest: str, size: int) -> AsyncIterator[bytes]:
        """The config or a layer tar, streamed from the archive; never more than ``size`` bytes."""
        what = f"{self.where}: blob {digest}"
        validate_digest(digest, what)
        if digest == manifest_digest(self.config):
            return guard_size(self._config_chunks(), digest, size)
        name = self.blobs.get(digest)
        if name is None:
            raise NotFound(f"{what} not found")
        return guard_size(self.files.stream(name, what), digest, size)

    async def close(self) -> None:
        """Remove temporary files."""
        await self.files.close()


def _layer_descriptor(files: TarFiles, name: str, diff_id: str, where: str) -> dict[str, Any]:
    """Digest, size and media type of a layer as stored (blocking: it may hash the layer)."""
    member = files.member(name, f"{where}: layer {name}")
    head = files.head(name, 6)
    match = _BLOB_PATH_RE.fullmatch(_normalize(member.name)) or _BLOB_PATH_RE.fullmatch(_normalize(name))
    if head.startswith(_ZSTD_MAGIC):
        raise InvalidArgument(
            f"{where}: layer {name} is zstd-compressed; docker-archive supports gzip or none"
        )
    compressed = head.startswith(b"\x1f\x8b")
    if match:
        digest = "sha256:" + match.group(1)
    elif not compressed:
        digest = diff_id  # the digest of an uncompressed layer tar is its diff ID; the core verifies it
    else:
        digest = files.sha256(name)
    return {
        "mediaType": DOCKER_LAYER_GZIP if compressed else DOCKER_LAYER,
        "size": member.size,
        "digest": digest,
    }


def _synthesize(files: TarFiles, entry: dict[str, Any], where: str) -> DockerArchiveSource:
    config_name = entry.get("Config")
    layers = entry.get("Layers")
    if not isinstance(config_name, str) or not isinstance(layers, list):
        raise InvalidArgument(f"{where}: manifest.json entry needs 'Config' and 'Layers'")
    what = f"{where}: config {config_name}"
    member = files.member(config_name, what)
    config = files.read_member(member, MAX_CONFIG_SIZE, what)
    try:
        parsed = parse_config(config, len(layers))
    except InvalidArgument as exc:
        raise InvalidArgument(f"{what}: {exc}") from None
    descriptors: list[dict[str, Any]] = []
    blobs: dict[str, str] = {}
    for name, diff_id in zip(layers, parsed.diff_ids, strict=True):
        descriptor = _layer_descriptor(files, str(name), diff_id, where)
        descriptors.append(descriptor)
        blobs[descriptor["digest"]] = str(name)
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": DOCKER_V2S2,
            "config": {"mediaType": DOCKER_CONFIG, "size": len(config), "digest": manifest_digest(config)},
            "layers": descriptors,
        },
        separators=(",", ":"),
    ).encode()
    return DockerArchiveSource(files, where, manifest, blobs, config)


async def open_docker_archive(reference: ImageReference, options: PullOptions) -> DockerArchiveSource:
    """Open ``docker-archive:/file.tar[:name:tag|:@N]``."""
    del options
    path, ref = split_path_reference(reference.name)
    where = f"docker-archive:{path}"
    files = await _indexed(path, where)
    try:
        data = await files.read("manifest.json", MAX_MANIFEST_SIZE, f"{where}: manifest.json")
        try:
            entries = json.loads(data)
        except (ValueError, UnicodeDecodeError) as exc:
            raise InvalidArgument(f"{where}: manifest.json is not valid JSON: {exc}") from None
        except RecursionError:
            raise InvalidArgument(f"{where}: manifest.json is not valid JSON: nested too deeply") from None
        if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
            raise InvalidArgument(f"{where}: manifest.json must be a list of objects")
        entry = _pick_image(entries, ref, where)
        return await asyncio.to_thread(_synthesize, files, entry, where)
    except BaseException:
        await files.close()
        raise
