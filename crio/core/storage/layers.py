"""The layer store: ``<driver>-layers/layers.json``, tar-split files, layer creation and removal, mounts.

Layer creation follows containers/storage's crash-safe protocol: a record flagged ``incomplete`` is saved
first, then the driver directory is made and the diff extracted (with no lock held, so readers never wait
for a pull), then the record is completed. Removal flags the record first, removes the data, then the
record. A crash leaves an ``incomplete`` record, which the next open (ours or podman's) deletes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import logging
import os
import shutil
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, BinaryIO, Literal, Protocol, cast

from crio.core.errors import AlreadyExists, CrioError, InvalidArgument, NotFound
from crio.core.storage.driver import DriverHooks
from crio.core.storage.layerid import is_id, layer_id, random_id
from crio.core.storage.lockfile import LockFile
from crio.core.storage.mounts import MountPoint, MountPoints
from crio.core.storage.recordfile import RecordFile
from crio.core.storage.records import INCOMPLETE_FLAG, Layer, now

log = logging.getLogger(__name__)


class ApplyDiff(Protocol):
    """The signature of ``crio.core.storage.layerdiff.apply_diff``."""

    def __call__(
        self,
        blob: BinaryIO,
        target: Path,
        fmt: Literal["overlay", "apply"],
        tar_split: BinaryIO,
        cancel: threading.Event | None = None,
    ) -> Any:
        """Extract ``blob`` into ``target``, the gzipped tar-split into ``tar_split``; return DiffStats."""
        ...


def default_apply_diff() -> ApplyDiff:
    """The layer extractor of :mod:`crio.core.storage.layerdiff`."""
    module = importlib.import_module("crio.core.storage.layerdiff")
    return cast(ApplyDiff, module.apply_diff)


class Cancelled(CrioError):
    """A layer extraction was cancelled by its caller (gRPC CANCELLED)."""

    code = "CANCELLED"


class LayerStore:
    """Layer records, their tar-split files and data directories, mount counts and the driver."""

    def __init__(self, graphroot: Path, runroot: Path, driver: DriverHooks) -> None:
        name = driver.ctx.driver
        self.dir = graphroot / f"{name}-layers"
        self.driver = driver
        self.file: RecordFile[Layer] = RecordFile(
            self.dir / "layers.json", self.dir / "layers.lock", Layer, check_mtime=True
        )
        self.mounts = MountPoints(runroot / f"{name}-layers")
        self.apply_diff: ApplyDiff | None = None

    @property
    def lock(self) -> LockFile:
        """The ``layers.lock`` lock file."""
        return self.file.lock

    def tar_split_path(self, layer_id_: str) -> Path:
        """``<driver>-layers/<id>.tar-split.gz``."""
        return self.dir / f"{layer_id_}.tar-split.gz"

    def data_dir(self, layer_id_: str) -> Path:
        """``<driver>-layers/<id>/`` (layer big data)."""
        return self.dir / layer_id_

    # ---------------------------------------------------------------------------------------- removal

    def remove_data(self, layer_id_: str) -> None:
        """Remove a layer's driver directories, tar-split and big-data directory (no lock needed)."""
        self.driver.remove_layer(layer_id_)
        with contextlib.suppress(FileNotFoundError):
            self.tar_split_path(layer_id_).unlink()
        shutil.rmtree(self.data_dir(layer_id_), ignore_errors=True)

    def mark_incomplete(self, layer_ids: Sequence[str]) -> None:
        """Flag the layers as being deleted and save (layers.lock held for writing)."""
        if not layer_ids:
            return
        flagged = set(layer_ids)
        self.file.save(
            dataclasses.replace(r, flags={**r.flags, INCOMPLETE_FLAG: True}) if r.id in flagged else r
            for r in self.file.records
        )

    def remove_layers(self, layer_ids: Sequence[str]) -> None:
        """Second and third steps of a deletion: data (no lock held), then the records (takes the lock).

        The layers must already be flagged with :meth:`mark_incomplete`.
        """
        failed: list[str] = []
        for layer in layer_ids:
            try:
                self.remove_data(layer)
            except Exception:
                log.exception("removing the data of layer %s failed; its record stays incomplete", layer)
                failed.append(layer)
        with self.lock.write():
            self.file.reload_if_changed()
            self.file.remove(layer for layer in layer_ids if layer not in failed)

    def delete_incomplete(self) -> list[str]:
        """Delete every incomplete layer (left by a crash); layers.lock held for writing."""
        broken = [r.id for r in self.file.records if r.incomplete]
        for layer in broken:
            log.warning("removing incomplete layer %s left behind by an interrupted write", layer)
            self.remove_data(layer)
        if broken:
            self.file.remove(broken)
        return broken

    # --------------------------------------------------------------------------------------- creation

    def put(
        self,
        parent: str | None,
        blob: BinaryIO,
        *,
        layer_id_: str | None = None,
        expected_diff_digest: str | None = None,
        compressed_digest: str | None = None,
        compressed_size: int | None = None,
        cancel: threading.Event | None = None,
    ) -> Layer:
        """Create a layer from a (possibly compressed) tar ``blob``; see :meth:`Store.put_layer`."""
        parent = parent or None
        if layer_id_ is None:
            layer_id_ = layer_id(parent, expected_diff_digest) if expected_diff_digest else random_id()
        if not is_id(layer_id_):
            raise InvalidArgument(f"invalid layer ID {layer_id_!r}")
        with self.lock.write():
            self.file.reload_if_changed()
            existing = self.file.get(layer_id_)
            if existing is not None:
                if existing.incomplete:
                    raise AlreadyExists(f"layer {layer_id_} is being created or deleted by another writer")
                return existing
            if parent is not None:
                parent_record = self.file.get(parent)
                if parent_record is None or parent_record.incomplete:
                    raise NotFound(f"parent layer {parent} of layer {layer_id_} does not exist")
            record = Layer(id=layer_id_, parent=parent or "", created=now(), flags={INCOMPLETE_FLAG: True})
            self.file.put(record)
        try:
            stats = self._extract(record, blob, cancel)
            if expected_diff_digest and stats.diff_digest != expected_diff_digest:
                raise InvalidArgument(
                    f"layer {layer_id_}: uncompressed digest {stats.diff_digest} "
                    f"does not match the expected {expected_diff_digest}"
                )
            done = dataclasses.replace(
                record,
                flags={k: v for k, v in record.flags.items() if k != INCOMPLETE_FLAG},
                compressed_digest=compressed_digest or stats.compressed_digest,
                compressed_size=compressed_size if compressed_size is not None else stats.compressed_size,
                diff_digest=stats.diff_digest,
                diff_size=stats.diff_size,
                compression=stats.compression,
                uidset=tuple(sorted(set(stats.uids))),
                gidset=tuple(sorted(set(stats.gids))),
            )
            with self.lock.write():
                self.file.reload_if_changed()
                current = self.file.get(layer_id_)
                if current is None or not current.incomplete:
                    raise NotFound(f"layer {layer_id_} was removed by another process while it was extracted")
                self.file.put(done)
            return done
        except BaseException:
            self.discard_incomplete(layer_id_)
            raise

    def _extract(self, record: Layer, blob: BinaryIO, cancel: threading.Event | None) -> Any:
        if cancel is not None and cancel.is_set():
            raise Cancelled(f"creating layer {record.id} was cancelled")
        target = self.driver.create_layer(record.id, record.parent or None)
        fmt = self.driver.diff_format()
        if fmt not in ("overlay", "apply"):
            raise InvalidArgument(f"storage driver {self.driver.ctx.driver!r} reports diff format {fmt!r}")
        apply = self.apply_diff or default_apply_diff()
        fd = os.open(
            self.tar_split_path(record.id), os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600
        )
        with os.fdopen(fd, "wb") as tar_split:
            stats = apply(blob, target, cast(Literal["overlay", "apply"], fmt), tar_split, cancel)
            tar_split.flush()
            os.fsync(tar_split.fileno())
        if cancel is not None and cancel.is_set():
            raise Cancelled(f"creating layer {record.id} was cancelled")
        return stats

    def discard_incomplete(self, layer_id_: str) -> None:
        """Remove the data and the incomplete record of a layer whose creation failed (takes the lock)."""
        try:
            self.remove_data(layer_id_)
        except Exception:
            log.exception("cleaning up the data of failed layer %s", layer_id_)
        try:
            with self.lock.write():
                self.file.reload_if_changed()
                current = self.file.get(layer_id_)
                if current is not None and current.incomplete:
                    self.file.remove([layer_id_])
        except Exception:
            log.exception("removing the record of failed layer %s", layer_id_)

    def reserve_rw_layer(self, layer_id_: str, parent: str | None, mount_label: str) -> None:
        """First step of a container's read-write layer: its record, flagged incomplete, is saved before the
        driver makes its directory, so that a crash at any later point leaves a record the next open deletes
        together with the directory (layers.lock held for writing)."""
        flags = {INCOMPLETE_FLAG: True}
        self.file.put(
            Layer(id=layer_id_, parent=parent or "", mountlabel=mount_label, created=now(), flags=flags)
        )

    def complete_rw_layer(self, layer_id_: str) -> None:
        """Last step, once the container's record is saved: the layer is complete (layers.lock held)."""
        current = self.file.get(layer_id_)
        if current is None or not current.incomplete:
            raise NotFound(
                f"layer {layer_id_} was removed by another process while its container was created"
            )
        self.file.put(
            dataclasses.replace(
                current, flags={k: v for k, v in current.flags.items() if k != INCOMPLETE_FLAG}
            )
        )

    # ----------------------------------------------------------------------------------------- queries

    def children(self) -> dict[str, list[str]]:
        """Parent ID → IDs of its child layers (lock held)."""
        result: dict[str, list[str]] = {}
        for r in self.file.records:
            if r.parent:
                result.setdefault(r.parent, []).append(r.id)
        return result

    def chain(self, top: str) -> list[Layer]:
        """The layer ``top`` and its ancestors, top first (lock held)."""
        out: list[Layer] = []
        seen: set[str] = set()
        current = self.file.get(top) if top else None
        while current is not None and current.id not in seen:
            seen.add(current.id)
            out.append(current)
            current = self.file.get(current.parent) if current.parent else None
        return out

    # ------------------------------------------------------------------------------------------ mounts

    def mount(self, layer: Layer, options: Sequence[str]) -> Path:
        """Mount ``layer`` or add a user to its mount (storage.lock and layers.lock held, writing)."""
        with self.mounts.lock.write():
            table = self.mounts.load()
            entry = table.get(layer.id)
            if entry is not None and entry.count > 0 and os.path.ismount(entry.path):
                table[layer.id] = dataclasses.replace(entry, count=entry.count + 1)
                self.mounts.save(table)
                return Path(entry.path)
            path = self.driver.mount(layer.id, layer.mountlabel, options)
            count = (entry.count if entry is not None else 0) + 1
            table[layer.id] = MountPoint(layer.id, str(path), count)
            try:
                self.mounts.save(table)
            except BaseException:
                if count == 1:
                    self.driver.unmount(layer.id)
                raise
            return path

    def unmount(self, layer_id_: str, force: bool) -> bool:
        """Drop one user (all with ``force``) of the layer's mount; return whether it stays mounted."""
        with self.mounts.lock.write():
            table = self.mounts.load()
            entry = table.get(layer_id_)
            if entry is None:
                return False
            count = 0 if force else entry.count - 1
            if count <= 0:
                self.driver.unmount(layer_id_)
                del table[layer_id_]
            else:
                table[layer_id_] = dataclasses.replace(entry, count=count)
            self.mounts.save(table)
            return count > 0

    def mount_table(self) -> dict[str, MountPoint]:
        """The current mount counts (takes mountpoints.lock for reading)."""
        with self.mounts.lock.read():
            return self.mounts.load()

    def unmount_all(self, layer_ids: Iterable[str] | None = None) -> None:
        """Unmount every mounted layer (or those listed) regardless of counts (locks held as for mount)."""
        with self.mounts.lock.write():
            table = self.mounts.load()
            for layer in list(table):
                if layer_ids is None or layer in layer_ids:
                    self.driver.unmount(layer)
                    del table[layer]
            self.mounts.save(table)
