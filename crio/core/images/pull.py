"""Pulling one image into the store: manifest (and platform selection), config, layers, image record.

Layers are downloaded in parallel to temporary files, each verified against its digest and size before it is
extracted; extraction runs on the store's bulk threads, in layer order. Any failure or cancellation removes
the temporary files and every layer this pull created, so nothing of a failed pull stays behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import shutil
import threading
import uuid
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from crio.core.errors import CrioError, InvalidArgument, NotFound
from crio.core.images.manifest import (
    MAX_CONFIG_SIZE,
    Descriptor,
    ImageManifest,
    ManifestList,
    manifest_digest,
    parse_config,
    parse_manifest,
    select_platform,
)
from crio.core.images.reference import parse_docker_reference, split_path_reference
from crio.core.images.trust.signature import (
    INSTANCE_SIZES_KEY,
    TOPLEVEL_SIGNATURES_KEY,
    Signature,
    decode_signatures,
    encode_signatures,
    signatures_big_data_key,
    update_signature_metadata,
)
from crio.core.plugins import PluginManager
from crio.core.storage.layerid import layer_id as compute_layer_id
from crio.core.storeaccess import StoreAccess
from crio.core.types import ImageReference, ImageSource, PullOptions

log = logging.getLogger(__name__)

PARALLEL_DOWNLOADS = 3


# Checks the image a source serves (given its top-level manifest) against the signature policy before any
# layer is fetched; returns the signatures to keep with the image, raises PermissionDenied to refuse it.
Verifier = Callable[[ImageSource, bytes], Awaitable[Sequence[Signature]]]


async def pull(
    access: StoreAccess,
    plugins: PluginManager,
    ref: ImageReference,
    options: PullOptions,
    tmp_root: Path,
    verify: Verifier | None = None,
) -> str:
    """Pull ``ref`` into the store and return the image ID; record the reference's name on the image."""
    pending = plugins.hook.crio_image_open(reference=ref, options=options)
    if pending is None:
        raise InvalidArgument(f"no loaded plugin serves the image transport {ref.transport!r}")
    source: ImageSource = await pending
    try:
        return await pull_from_source(access, source, ref, tmp_root, verify)
    finally:
        await source.close()


async def pull_from_source(
    access: StoreAccess,
    source: ImageSource,
    ref: ImageReference,
    tmp_root: Path,
    verify: Verifier | None = None,
) -> str:
    """Store the image ``source`` serves, named after ``ref`` (docker references only); return its ID.

    ``verify`` (the signature policy) sees the top-level manifest first; what it returns is stored as the
    image's signatures (containers/image's big-data layout, so podman on the node sees them too).
    """
    return await _Pull(access, source, ref, tmp_root, verify).run()


def _reference_digest(name: str) -> str:
    return name.partition("@")[2]


class _Pull:
    """The state of one pull, so a failure can undo exactly what it did."""

    def __init__(
        self,
        access: StoreAccess,
        source: ImageSource,
        ref: ImageReference,
        tmp_root: Path,
        verify: Verifier | None = None,
    ) -> None:
        self.verify = verify
        self.access = access
        self.store = access.store
        self.source = source
        self.ref = ref
        self.tmp = tmp_root / f"pull-{uuid.uuid4().hex}"
        self.cancel = threading.Event()
        self.created_layers: list[str] = []

    async def run(self) -> str:
        top_raw, top_type = await self.source.get_manifest(None)
        top_digest = manifest_digest(top_raw)
        wanted = _reference_digest(self.ref.name)
        if wanted and wanted != top_digest:
            raise InvalidArgument(f"{self.ref.name}: the registry served manifest {top_digest}, not {wanted}")
        signatures = await self.verify(self.source, top_raw) if self.verify is not None else ()
        big_data: list[tuple[str, bytes]] = []
        metadata: dict[str, Any] = {}
        if signatures:
            big_data, metadata = _signature_data(top_digest, signatures, metadata)
        parsed = parse_manifest(top_raw, top_type)
        raw = top_raw
        if isinstance(parsed, ManifestList):
            chosen = select_platform(parsed)
            raw, media_type = await self.source.get_manifest(chosen.digest)
            if manifest_digest(raw) != chosen.digest:
                raise InvalidArgument(f"{self.ref.name}: manifest {chosen.digest} does not match its digest")
            big_data.append((f"manifest-{top_digest}", top_raw))
            parsed = parse_manifest(raw, media_type)
            if isinstance(parsed, ManifestList):
                raise InvalidArgument(f"{self.ref.name}: a manifest list nested in a manifest list")
        manifest: ImageManifest = parsed
        config_raw = await self._fetch_small(manifest.config)
        config = parse_config(config_raw, len(manifest.layers))
        image_id = manifest.config.digest.split(":", 1)[1]
        names = self._names()
        existing = await self.access.call(self.store.image, image_id)
        if existing is not None:
            if signatures:  # added to what the image keeps, for the create-time check and podman
                await self.access.call(_merge_signatures, self.store, image_id, top_digest, signatures)
            if names:
                await self.access.call(self.store.add_names, image_id, names)
            return image_id
        big_data = [(f"sha256:{image_id}", config_raw), *big_data]
        big_data += [(f"manifest-{manifest_digest(raw)}", raw), ("manifest", raw)]
        try:
            top_layer = await self._layers(manifest, config.diff_ids)
            await self.access.call(
                self.store.create_image,
                image_id,
                top_layer,
                names,
                config.created,
                big_data,
                digest=top_digest,
                metadata=_metadata_text(metadata),
            )
        except BaseException:
            await self._undo()
            raise
        finally:
            await asyncio.to_thread(shutil.rmtree, self.tmp, True)
        return image_id

    def _names(self) -> list[str]:
        """Docker references name the image; a local archive or layout does when its ref is a full name."""
        if self.ref.transport == "docker":
            return [self.ref.name]
        _, local_ref = split_path_reference(self.ref.name)
        if "/" not in local_ref:
            return []
        try:
            return [str(parse_docker_reference(local_ref))]
        except InvalidArgument:
            return []

    async def _fetch_small(self, descriptor: Descriptor) -> bytes:
        if descriptor.size > MAX_CONFIG_SIZE:
            raise InvalidArgument(f"{self.ref.name}: config blob of {descriptor.size} bytes is too large")
        hasher = hashlib.sha256()
        chunks: list[bytes] = []
        async for chunk in self.source.get_blob(descriptor.digest, descriptor.size):
            hasher.update(chunk)
            chunks.append(chunk)
        data = b"".join(chunks)
        _verify(self.ref.name, descriptor, "sha256:" + hasher.hexdigest(), len(data))
        return data

    async def _layers(self, manifest: ImageManifest, diff_ids: Sequence[str]) -> str | None:
        layer_ids: list[str] = []
        for diff_id in diff_ids:
            layer_ids.append(compute_layer_id(layer_ids[-1] if layer_ids else None, diff_id))
        present = [await self.access.call(self.store.layer, lid) is not None for lid in layer_ids]
        semaphore = asyncio.Semaphore(PARALLEL_DOWNLOADS)
        downloads: dict[int, asyncio.Task[Path]] = {}
        await asyncio.to_thread(self.tmp.mkdir, 0o700, True, True)
        for index, layer in enumerate(manifest.layers):
            if not present[index]:
                downloads[index] = asyncio.create_task(self._download(layer.descriptor, index, semaphore))
        parent: str | None = None
        try:
            for index, layer_id in enumerate(layer_ids):
                if index in downloads:
                    path = await downloads[index]
                    await self._put_layer(
                        path, parent, layer_id, diff_ids[index], manifest.layers[index].descriptor
                    )
                    await asyncio.to_thread(os.unlink, path)
                parent = layer_id
        finally:
            for task in downloads.values():
                task.cancel()
            await asyncio.gather(*downloads.values(), return_exceptions=True)
        return parent

    async def _download(self, descriptor: Descriptor, index: int, semaphore: asyncio.Semaphore) -> Path:
        path = self.tmp / f"layer-{index}"
        async with semaphore:
            hasher = hashlib.sha256()
            size = 0
            handle = await asyncio.to_thread(open, path, "wb")
            try:
                async for chunk in self.source.get_blob(descriptor.digest, descriptor.size):
                    hasher.update(chunk)
                    size += len(chunk)
                    await asyncio.to_thread(handle.write, chunk)
            except InvalidArgument as exc:  # what the source refused (e.g. too many bytes): name the image
                if str(exc).startswith(self.ref.name):
                    raise
                raise InvalidArgument(f"{self.ref.name}: {exc}") from None
            finally:
                await asyncio.to_thread(handle.close)
        _verify(self.ref.name, descriptor, "sha256:" + hasher.hexdigest(), size)
        return path

    async def _put_layer(
        self, path: Path, parent: str | None, layer_id: str, diff_id: str, descriptor: Descriptor
    ) -> None:
        def work() -> Any:
            with open(path, "rb") as blob:
                return self.store.put_layer(
                    parent,
                    blob,
                    layer_id=layer_id,
                    expected_diff_digest=diff_id,
                    compressed_digest=descriptor.digest,
                    compressed_size=descriptor.size,
                    cancel=self.cancel,
                )

        future = asyncio.ensure_future(self.access.bulk(work))
        try:
            await asyncio.shield(future)
        except InvalidArgument as exc:  # the layer's content: say which image and layer
            raise InvalidArgument(f"{self.ref.name}: layer {descriptor.digest}: {exc}") from None
        except asyncio.CancelledError:
            self.cancel.set()
            with contextlib.suppress(BaseException):
                await future  # the worker stops at its next entry and removes its half-written layer
            raise
        self.created_layers.append(layer_id)

    async def _undo(self) -> None:
        self.cancel.set()
        for layer_id in reversed(self.created_layers):
            try:
                await self.access.call(self.store.delete_layer, layer_id)
            except CrioError as exc:  # e.g. another pull's image now uses it: keep it
                log.info("pull of %s: keeping layer %s: %s", self.ref.name, layer_id, exc)


def _merge_signatures(store: Any, image_id: str, top_digest: str, new: Sequence[Signature]) -> None:
    """Add ``new`` to the signatures an existing image keeps for ``top_digest`` (on a store thread).

    One manifest may be pulled under several names, each with its own signatures (every signature names
    its identity and is verified on its own), so the stored set is the union, never the last pull's.
    """
    key = signatures_big_data_key(top_digest)
    image = store.image(image_id)
    try:
        metadata = json.loads(image.metadata or "{}") if image is not None else {}
        sizes = (metadata.get(INSTANCE_SIZES_KEY) or {}).get(top_digest)
        kept = decode_signatures(store.image_big_data(image_id, key), sizes)
    except (NotFound, InvalidArgument, ValueError, AttributeError):
        metadata, kept = {}, []
    merged = list(kept) + [sig for sig in new if sig not in kept]
    if kept and len(merged) == len(kept):
        return
    items, updated = _signature_data(top_digest, merged, metadata)
    for item, blob in items:
        store.set_image_big_data(image_id, item, blob)
    store.set_image_metadata(image_id, _metadata_text(updated))


def _signature_data(
    top_digest: str, signatures: Sequence[Signature], metadata: dict[str, Any]
) -> tuple[list[tuple[str, bytes]], dict[str, Any]]:
    """The big-data items and the updated image metadata that hold ``signatures``, as containers/image
    stores them: the top-level manifest's signatures under "signatures" and "signature-<hex>", their sizes
    in the image's metadata (how podman splits the blob)."""
    blob = encode_signatures(signatures)
    items = [(key, blob) for key in (TOPLEVEL_SIGNATURES_KEY, signatures_big_data_key(top_digest))]
    return items, update_signature_metadata(metadata, top_digest, signatures, toplevel=True)


def _metadata_text(metadata: dict[str, Any]) -> str:
    return json.dumps(metadata, separators=(",", ":"))


def _verify(name: str, descriptor: Descriptor, digest: str, size: int) -> None:
    if descriptor.size >= 0 and size != descriptor.size:
        raise InvalidArgument(
            f"{name}: blob {descriptor.digest} has {size} bytes, its descriptor says {descriptor.size}"
        )
    if digest != descriptor.digest:
        raise InvalidArgument(f"{name}: blob {descriptor.digest} does not match its digest (got {digest})")
