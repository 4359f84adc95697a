"""The store: images, layers and containers in containers/storage's on-disk format, shared with podman.

Synchronous and thread-safe: the daemon calls it from worker threads, never from the event loop. Locks are
taken in containers/storage's order (``storage.lock`` → ``layers.lock`` → ``images.lock`` →
``containers.lock``; ``mountpoints.lock`` inside the layer store) and held only while records change, never
during a layer extraction or a tree removal, so listing images never waits for a pull. The graph driver is
reached only through the storage hooks.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO

from crio.core.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
from crio.core.storage import imagemounts
from crio.core.storage.containers import ContainerStore
from crio.core.storage.driver import DriverHooks
from crio.core.storage.images import ImageStore
from crio.core.storage.layerid import is_id, random_id
from crio.core.storage.layers import ApplyDiff, LayerStore
from crio.core.storage.lockfile import LockFile, get_lockfile
from crio.core.storage.records import Container, Image, Layer
from crio.core.types import StorageContext

log = logging.getLogger(__name__)

DRIVER_ALIASES = {"overlay2": "overlay"}


class Store:
    """A containers/storage graph root and run root used through one graph driver."""

    def __init__(
        self, graphroot: Path, runroot: Path, driver: str, options: Sequence[str], hook: Any
    ) -> None:
        self.graphroot = Path(graphroot)
        self.runroot = Path(runroot)
        self.driver = DRIVER_ALIASES.get(driver, driver)
        if not self.driver:
            raise InvalidArgument("no storage driver given")
        self.options = tuple(options)
        self.ctx = StorageContext(self.driver, self.graphroot, self.runroot, self.options)
        self.hooks = DriverHooks(hook, self.ctx)
        self.layer_store = LayerStore(self.graphroot, self.runroot, self.hooks)
        self.image_store = ImageStore(self.graphroot, self.driver)
        self.container_store = ContainerStore(self.graphroot, self.runroot, self.driver)
        self.storage_lock: LockFile = get_lockfile(self.graphroot / "storage.lock")
        self._storage_token: bytes | None = None
        self._open = False

    @property
    def apply_diff(self) -> ApplyDiff | None:
        """The layer extractor (default: ``crio.core.storage.layerdiff.apply_diff``); replaceable in tests."""
        return self.layer_store.apply_diff

    @apply_diff.setter
    def apply_diff(self, value: ApplyDiff | None) -> None:
        self.layer_store.apply_diff = value

    # --------------------------------------------------------------------------------------- lifecycle

    def open(self) -> None:
        """Create the directories, initialise the driver, load the records, delete incomplete layers."""
        for path in (
            self.graphroot,
            self.runroot,
            self.layer_store.dir,
            self.image_store.dir,
            self.container_store.dir,
            self.layer_store.mounts.path.parent,
            self.container_store.run_dir,
        ):
            path.mkdir(mode=0o700, parents=True, exist_ok=True)
        with self.storage_lock.write():
            self.hooks.init()
            self._storage_token = self.storage_lock.token()
            with self.layer_store.lock.write():
                self.layer_store.file.reload_if_changed()
                self.layer_store.delete_incomplete()
        with self._images_read():
            pass
        with self._containers_read():
            pass
        self._open = True

    def shutdown(self, force: bool = False) -> bool:
        """Shut the driver down unless a layer is mounted (``force``: unmount all); return whether it did."""
        with self.storage_lock.write(), self.layer_store.lock.write():
            mounted = self.layer_store.mount_table()
            if mounted and not force:
                log.info("storage driver stays up: %d layer(s) mounted", len(mounted))
                return False
            if mounted:
                self.layer_store.unmount_all()
            self.hooks.shutdown()
            self.storage_lock.record_write()
            self._storage_token = None  # the next mount initialises the driver again
        return True

    def _refresh_driver(self) -> None:
        """Re-initialise the driver when another process shut it down since (storage.lock written; held)."""
        changed, token = self.storage_lock.modified_since(self._storage_token)
        if changed:
            self.hooks.init()
            self._storage_token = token

    # ------------------------------------------------------------------------------------ lock helpers

    @contextlib.contextmanager
    def _layers_read(self) -> Iterator[LayerStore]:
        with self.layer_store.lock.read():
            self.layer_store.file.reload_if_changed()
            yield self.layer_store

    @contextlib.contextmanager
    def _layers_write(self) -> Iterator[LayerStore]:
        with self.layer_store.lock.write():
            self.layer_store.file.reload_if_changed()
            yield self.layer_store

    @contextlib.contextmanager
    def _images_read(self) -> Iterator[ImageStore]:
        with self.image_store.lock.read():
            self.image_store.file.reload_if_changed()
            yield self.image_store

    @contextlib.contextmanager
    def _images_write(self) -> Iterator[ImageStore]:
        with self.image_store.lock.write():
            self.image_store.file.reload_if_changed()
            yield self.image_store

    @contextlib.contextmanager
    def _containers_read(self) -> Iterator[ContainerStore]:
        with self.container_store.lock.read():
            self.container_store.file.reload_if_changed()
            yield self.container_store

    @contextlib.contextmanager
    def _containers_write(self) -> Iterator[ContainerStore]:
        with self.container_store.lock.write():
            self.container_store.file.reload_if_changed()
            yield self.container_store

    # ------------------------------------------------------------------------------------------ layers

    def layers(self) -> list[Layer]:
        """Every layer record (incomplete ones included)."""
        with self._layers_read() as layers:
            return list(layers.file.records)

    def layer(self, id: str) -> Layer | None:
        """The complete layer with this ID (or name, or unique ID prefix), or None.

        A layer being created or deleted (flagged ``incomplete``) is not returned; :meth:`layers` lists it.
        """
        with self._layers_read() as layers:
            found = layers.file.lookup(id)
            return None if found is None or found.incomplete else found

    def put_layer(
        self,
        parent: str | None,
        blob: BinaryIO,
        *,
        layer_id: str | None = None,
        expected_diff_digest: str | None = None,
        compressed_digest: str | None = None,
        compressed_size: int | None = None,
        cancel: threading.Event | None = None,
    ) -> Layer:
        """Create a layer from a layer blob (tar, possibly compressed) on top of ``parent``.

        ``layer_id`` defaults to containers/image's formula when ``expected_diff_digest`` is given (else a
        random ID). A complete layer with that ID is returned as is. The uncompressed digest must equal
        ``expected_diff_digest`` when given. On any error or cancellation nothing is left behind.
        """
        return self.layer_store.put(
            parent,
            blob,
            layer_id_=layer_id,
            expected_diff_digest=expected_diff_digest,
            compressed_digest=compressed_digest,
            compressed_size=compressed_size,
            cancel=cancel,
        )

    def delete_layer(self, id: str) -> None:
        """Delete a layer that no layer, image or container uses and that is not mounted."""
        with self._layers_write() as layers, self._images_read() as images, self._containers_read() as ctrs:
            layer = layers.file.lookup(id)
            if layer is None:
                raise NotFound(f"layer {id} not found in the store")
            children = layers.children().get(layer.id)
            if children:
                raise FailedPrecondition(f"layer {layer.id} has child layers: {', '.join(children)}")
            users = [i.id for i in images.file.records if layer.id in (i.layer, *i.mapped_layers)]
            if users:
                raise FailedPrecondition(f"layer {layer.id} is used by image(s) {', '.join(users)}")
            holders = [c.id for c in ctrs.file.records if c.layer == layer.id]
            if holders:
                raise FailedPrecondition(f"layer {layer.id} is used by container(s) {', '.join(holders)}")
            if layer.id in layers.mount_table():
                raise FailedPrecondition(f"layer {layer.id} is mounted")
            layers.mark_incomplete([layer.id])
        self.layer_store.remove_layers([layer.id])

    # ------------------------------------------------------------------------------------------ images

    def images(self) -> list[Image]:
        """Every image record (the in-memory copy, reloaded only when another writer wrote)."""
        if self.image_store.file.cached_if_current() is not None:
            return list(self.image_store.file.records)
        with self._images_read() as images:
            return list(images.file.records)

    def image(self, id_or_name: str) -> Image | None:
        """The image with this ID, name, ``sha256:<id>``, unique ID prefix or manifest digest, or None."""
        if self.image_store.file.cached_if_current() is not None:
            return self.image_store.lookup(id_or_name)
        with self._images_read() as images:
            return images.lookup(id_or_name)

    def create_image(
        self,
        id: str,
        top_layer: str | None,
        names: Sequence[str],
        created: datetime | None,
        big_data: Sequence[tuple[str, bytes]],
        digest: str = "",
        metadata: str = "{}",
    ) -> Image:
        """Create an image record on ``top_layer`` with big data (in order) and names.

        Names are moved off any other image. An image with this ID and the same top layer is reused (names
        and big data added); with another top layer it is an AlreadyExists error.
        """
        with self._layers_read() as layers, self._images_write() as images:
            if top_layer:
                layer = layers.file.get(top_layer)
                if layer is None or layer.incomplete:
                    raise NotFound(f"top layer {top_layer} of image {id} does not exist")
            return images.create(id, top_layer or "", names, created, big_data, digest, metadata)

    def add_names(self, id: str, names: Sequence[str]) -> None:
        """Add names to an image; each is moved off any other image and recorded in names-history."""
        with self._images_write() as images:
            images.add_names(id, names)

    def remove_names(self, id: str, names: Sequence[str]) -> None:
        """Remove names from an image."""
        with self._images_write() as images:
            images.remove_names(id, names)

    def image_big_data(self, id: str, key: str) -> bytes:
        """One big-data item of an image (e.g. ``manifest``, ``sha256:<config hex>``)."""
        with self._images_read() as images:
            return images.big_data(id, key)

    def set_image_big_data(self, id: str, key: str, data: bytes) -> None:
        """Store (or replace) one big-data item of an image."""
        with self._images_write() as images:
            images.set_big_data(id, [(key, data)])

    def set_image_metadata(self, id: str, metadata: str) -> None:
        """Replace an image's metadata string (JSON by convention)."""
        with self._images_write() as images:
            images.set_metadata(id, metadata)

    def image_sizes(self, ids: Sequence[str]) -> dict[str, int]:
        """Sizes of several images under one pair of read locks; absent IDs are left out."""
        with self._layers_read() as layers, self._images_read() as images:
            sizes: dict[str, int] = {}
            for id in ids:
                image = images.lookup(id)
                if image is not None:
                    sizes[id] = self._size_of(image, layers)
            return sizes

    @staticmethod
    def _size_of(image: Image, layers: Any) -> int:
        total = sum(image.big_data_sizes.values())
        seen: set[str] = set()
        for top in (image.layer, *image.mapped_layers):
            for layer in layers.chain(top):
                if layer.id not in seen:
                    seen.add(layer.id)
                    total += layer.diff_size if layer.diff_digest else 0
        return total

    def image_size(self, id: str) -> int:
        """Size as containers/storage computes it: big-data sizes plus the diff sizes of the layer chain."""
        with self._layers_read() as layers, self._images_read() as images:
            return self._size_of(images.require(id), layers)

    def delete_image(self, id: str) -> None:
        """Delete an image and every layer of its chain that no other image or container still uses."""
        with self._layers_write() as layers, self._images_write() as images, self._containers_read() as ctrs:
            image = images.require(id)
            users = [c.id for c in ctrs.file.records if c.image == image.id]
            if users:
                raise FailedPrecondition(f"image {image.id} is used by container(s) {', '.join(users)}")
            mounters = [c.id for c in ctrs.file.records if image.id in imagemounts.volume_images(c.flags)]
            if mounters:
                raise FailedPrecondition(
                    f"image {image.id} is mounted as an image volume by container(s) {', '.join(mounters)}"
                )
            remaining = [i for i in images.file.records if i.id != image.id]
            tops = {layer for i in remaining for layer in (i.layer, *i.mapped_layers)}
            children = {k: set(v) for k, v in layers.children().items()}
            mounted = layers.mount_table()
            doomed: list[str] = []
            for top in (image.layer, *image.mapped_layers):
                for layer in layers.chain(top):
                    if layer.id in doomed:
                        continue
                    if layer.id in tops or children.get(layer.id) or layer.id in mounted:
                        break
                    doomed.append(layer.id)
                    if layer.parent:
                        children.get(layer.parent, set()).discard(layer.id)
            images.delete(image.id)
            layers.mark_incomplete(doomed)
        self.layer_store.remove_layers(doomed)

    # -------------------------------------------------------------------------------------- containers

    def create_container(
        self,
        id: str,
        names: Sequence[str],
        image_id: str,
        metadata: str,
        mount_label: str = "",
        flags: Mapping[str, Any] | None = None,
        volume_images: Sequence[str] = (),
    ) -> Container:
        """Create a container: a read-write layer on the image's top layer, a record and its directories.

        Names must be unused (AlreadyExists names the holder). ``flags`` get ``MountLabel`` added.
        ``volume_images``: the IDs of the images the container's image volumes will mount (see
        :meth:`mount_image`); they must exist, and cannot be deleted while the container exists.
        """
        container_id = id or random_id()
        if not is_id(container_id):
            raise InvalidArgument(f"invalid container ID {container_id!r}: want 64 lowercase hex digits")
        with self._images_read() as images:
            image = images.require(image_id)
            volumes = [images.require(v).id for v in volume_images]
        with self._containers_read() as ctrs:
            ctrs.check_free(container_id, names)
        # Crash-safe order: the read-write layer's record (incomplete), its directory, the container's
        # record, then the layer completed. A crash before the container record leaves an incomplete layer
        # (deleted with its directory at the next open); after it, a container whose layer may be missing,
        # which the runtime's journal removes.
        rw_layer = random_id()
        with self._layers_write() as layers:
            layers.reserve_rw_layer(rw_layer, image.layer or None, mount_label)
        try:
            self.hooks.create_layer(rw_layer, image.layer or None)
            with self._layers_write() as layers, self._images_read() as images:
                current = images.lookup(image.id)
                if current is None or current.layer != image.layer:
                    raise NotFound(f"image {image_id} was removed while creating container {container_id}")
                gone = [v for v in volumes if images.file.get(v) is None]
                if gone:
                    raise NotFound(f"image {gone[0]} was removed while creating container {container_id}")
                with self._containers_write() as ctrs:
                    ctrs.check_free(container_id, names)
                    all_flags = imagemounts.with_volume_images(
                        {"MountLabel": mount_label, **(flags or {})}, volumes
                    )
                    container = ctrs.create(container_id, names, image.id, rw_layer, metadata, all_flags)
                    try:
                        layers.complete_rw_layer(rw_layer)
                    except BaseException:
                        ctrs.file.remove([container_id])
                        ctrs.remove_directories(container_id)
                        raise
                    return container
        except BaseException:
            self.layer_store.discard_incomplete(rw_layer)
            raise

    def containers(self) -> list[Container]:
        """Every container record (the in-memory copy, reloaded only when another writer wrote)."""
        if self.container_store.file.cached_if_current() is not None:
            return list(self.container_store.file.records)
        with self._containers_read() as ctrs:
            return list(ctrs.file.records)

    def container(self, id_or_name: str) -> Container | None:
        """The container with this ID, name or unique ID prefix, or None."""
        if self.container_store.file.cached_if_current() is not None:
            return self.container_store.file.lookup(id_or_name)
        with self._containers_read() as ctrs:
            return ctrs.file.lookup(id_or_name)

    def _require_container(self, id: str) -> Container:
        with self._containers_read() as ctrs:
            return ctrs.require(id)

    def container_directory(self, id: str) -> Path:
        """The container's persistent directory ``<graphroot>/<driver>-containers/<id>/userdata``."""
        path = self.container_store.directory(self._require_container(id).id)
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        return path

    def container_run_directory(self, id: str) -> Path:
        """The container's runtime directory ``<runroot>/<driver>-containers/<id>/userdata``."""
        path = self.container_store.run_directory(self._require_container(id).id)
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        return path

    def mount(self, container_id: str, options: Sequence[str] = ()) -> Path:
        """Mount the container's root filesystem (driver mount only when its count goes 0 → 1)."""
        container = self._require_container(container_id)
        with self.storage_lock.write(), self._layers_write() as layers:
            self._refresh_driver()
            layer = layers.file.get(container.layer)
            if layer is None:
                raise NotFound(f"layer {container.layer} of container {container.id} does not exist")
            return layers.mount(layer, options)

    def unmount(self, container_id: str, force: bool = False) -> bool:
        """Drop one user of the container's mount (all with ``force``); the driver unmounts at 0.

        Returns whether the layer is still mounted afterwards (as containers/storage's ``Unmount``).
        """
        container = self._require_container(container_id)
        with self.storage_lock.write(), self._layers_write() as layers:
            return layers.unmount(container.layer, force)

    def mounted_count(self) -> int:
        """How many layers are mounted (count above zero)."""
        with self._layers_read() as layers:
            return len(layers.mount_table())

    # ------------------------------------------------------------------------------------- image mounts

    def mount_image(
        self,
        container_id: str,
        image_id: str,
        name: str,
        mount_label: str = "",
        options: Sequence[str] = (),
    ) -> Path:
        """Mount an image read-only for one image volume of a container; return the mount point.

        Every call makes a mount of its own, ``<runroot>/<driver>-containers/<id>/image-volumes/<name>``,
        which belongs to the container (see :mod:`crio.core.storage.imagemounts`): :meth:`unmount_image` or
        :meth:`delete_container` takes it away. The image must be one of the container's ``volume_images``
        (:meth:`create_container`). An image without layers gets an empty directory. ``options``: mount
        flags (``nodev``, ``nosuid``) and the id-map options of :meth:`mount`.
        """
        with self.storage_lock.write(), self._layers_read(), self._images_read() as images:
            image = images.require(image_id)
            with self._containers_read() as ctrs:
                container = ctrs.require(container_id)
            if image.id not in imagemounts.volume_images(container.flags):
                raise FailedPrecondition(
                    f"container {container.id} was not created with image {image.id} as an image volume"
                )
            self._refresh_driver()
            target = imagemounts.make_target(self.container_store.image_mount_dir(container.id), name)
            try:
                if image.layer:
                    self.hooks.mount_readonly(image.layer, target, mount_label, options)
            except BaseException:
                imagemounts.release(target)
                raise
            return target

    def unmount_image(self, container_id: str, name: str) -> None:
        """Unmount one image mount of a container and remove its mount point (absent is fine)."""
        container = self._require_container(container_id)
        imagemounts.release(imagemounts.mount_point(self.container_store.image_mount_dir(container.id), name))

    def delete_container(self, id: str) -> None:
        """Unmount the container's image mounts, unmount and delete its read-write layer, its record and both
        its directories.

        Crash-safe order: the layer is flagged incomplete (saved) before the container's record goes, so a
        crash in between leaves a record whose layer the next open deletes, never a layer nobody owns; the
        directories go last (:meth:`remove_container_directories` clears them when only they are left)."""
        with self.storage_lock.write(), self._layers_write() as layers, self._containers_write() as ctrs:
            container = ctrs.require(id)
            imagemounts.release_all(self.container_store.image_mount_dir(container.id))
            if container.layer in layers.mount_table():
                layers.unmount_all([container.layer])
            doomed = [container.layer] if layers.file.get(container.layer) is not None else []
            layers.mark_incomplete(doomed)
            ctrs.file.remove([container.id])
        self.layer_store.remove_layers(doomed)
        self.container_store.remove_directories(container.id)

    def remove_container_directories(self, id: str) -> None:
        """Remove the directories of a container that has no record (left by an interrupted deletion)."""
        with self._containers_read() as ctrs:
            if ctrs.file.get(id) is not None:
                raise AlreadyExists(f"container {id} still has a record; delete the container instead")
        self.container_store.remove_directories(id)

    def set_container_big_data(self, id: str, key: str, data: bytes) -> None:
        """Store one big-data item of a container."""
        with self._containers_write() as ctrs:
            ctrs.set_big_data(id, key, data)

    def container_big_data(self, id: str, key: str) -> bytes:
        """Read one big-data item of a container."""
        with self._containers_read() as ctrs:
            return ctrs.big_data(id, key)

    # ------------------------------------------------------------------------------------------- usage

    def container_layer_usage(self, container_id: str) -> tuple[str, int, int]:
        """``(mount point or layer dir, bytes, inodes)`` of a container's writable layer."""
        container = self._require_container(container_id)
        size, inodes = self.hooks.layer_size(container.layer)
        return str(self.graphroot / self.driver / container.layer), size, inodes

    def usage(self) -> tuple[tuple[int, int], tuple[int, int]]:
        """``((bytes, inodes) of image layers, (bytes, inodes) of container layers)``, for ImageFsInfo."""
        with self._layers_read() as layers:
            records = [r for r in layers.file.records if not r.incomplete]
        with self._containers_read() as ctrs:
            container_layers = {c.layer for c in ctrs.file.records}
        totals = {True: [0, 0], False: [0, 0]}
        for layer in records:
            try:
                size, inodes = self.hooks.layer_size(layer.id)
            except (OSError, NotFound):
                continue  # removed meanwhile
            bucket = totals[layer.id in container_layers]
            bucket[0] += size
            bucket[1] += inodes
        return (totals[False][0], totals[False][1]), (totals[True][0], totals[True][1])
