"""The image store: ``<driver>-images/images.json`` and each image's big-data directory.

Every method expects the caller to hold ``images.lock`` (write lock for the ones that change something)
and to have called ``file.reload_if_changed()`` under it.
"""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Iterable, Sequence
from datetime import datetime
from pathlib import Path

from crio.core.errors import AlreadyExists, InvalidArgument, NotFound
from crio.core.storage.atomic import atomic_write
from crio.core.storage.layerid import is_id
from crio.core.storage.lockfile import LockFile
from crio.core.storage.recordfile import RecordFile
from crio.core.storage.records import Image, bigdata_digest, bigdata_filename, now


def dedupe(names: Iterable[str]) -> tuple[str, ...]:
    """``names`` without repeats, first occurrence kept."""
    return tuple(dict.fromkeys(names))


def add_to_history(history: Sequence[str], name: str) -> tuple[str, ...]:
    """``names-history`` after setting ``name``: newest first, no repeats."""
    return (name, *(h for h in history if h != name))


class ImageStore:
    """Image records and their big data."""

    def __init__(self, graphroot: Path, driver: str) -> None:
        self.dir = graphroot / f"{driver}-images"
        self.file: RecordFile[Image] = RecordFile(self.dir / "images.json", self.dir / "images.lock", Image)

    @property
    def lock(self) -> LockFile:
        """The ``images.lock`` lock file."""
        return self.file.lock

    def data_dir(self, image_id: str) -> Path:
        """``<driver>-images/<id>/``."""
        return self.dir / image_id

    def lookup(self, key: str) -> Image | None:
        """By ID, name, ``sha256:<id>``, unique hex ID prefix, then by manifest digest (``sha256:...``)."""
        found = self.file.lookup(key)
        if found is not None:
            return found
        if key.startswith("sha256:"):
            found = self.file.get(key.removeprefix("sha256:"))
            if found is not None:
                return found
            for image in self.file.records:
                if key in image.digests:
                    return image
        return None

    def require(self, key: str) -> Image:
        """:meth:`lookup` or raise NotFound."""
        found = self.lookup(key)
        if found is None:
            raise NotFound(f"image {key} not found in the store")
        return found

    # ---------------------------------------------------------------------------------------- changes

    def _with_names(self, records: list[Image], image: Image, names: Sequence[str]) -> list[Image]:
        """Give ``image`` exactly ``names``, taking them off any other image, recording history."""
        wanted = set(names)
        history = image.names_history
        for name in names:
            history = add_to_history(history, name)
        updated = dataclasses.replace(image, names=tuple(names), names_history=history)
        out: list[Image] = []
        for record in records:
            if record.id == image.id:
                out.append(updated)
            elif wanted.intersection(record.names):
                out.append(
                    dataclasses.replace(record, names=tuple(n for n in record.names if n not in wanted))
                )
            else:
                out.append(record)
        return out

    def _write_big_data(self, image: Image, items: Sequence[tuple[str, bytes]]) -> Image:
        if not items:
            return image
        directory = self.data_dir(image.id)
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        names = list(image.big_data_names)
        sizes = dict(image.big_data_sizes)
        digests = dict(image.big_data_digests)
        for key, data in items:
            if not key:
                raise InvalidArgument(f"image {image.id}: empty big-data key")
            atomic_write(directory / bigdata_filename(key), data)
            if key not in names:
                names.append(key)
            sizes[key] = len(data)
            digests[key] = bigdata_digest(key, data)
        return dataclasses.replace(
            image, big_data_names=tuple(names), big_data_sizes=sizes, big_data_digests=digests
        )

    def create(
        self,
        image_id: str,
        top_layer: str,
        names: Sequence[str],
        created: datetime | None,
        big_data: Sequence[tuple[str, bytes]],
        digest: str,
        metadata: str,
    ) -> Image:
        """Create (or, same ID and top layer, reuse) an image record; big data and names as given."""
        if not is_id(image_id):
            raise InvalidArgument(f"invalid image ID {image_id!r}: want 64 lowercase hex digits")
        existing = self.file.get(image_id)
        if existing is not None and existing.layer != top_layer:
            raise AlreadyExists(
                f"image {image_id} exists with top layer {existing.layer or '(none)'}, "
                f"not {top_layer or '(none)'}"
            )
        created_dir = existing is None and not self.data_dir(image_id).exists()
        try:
            image = existing or Image(
                id=image_id, layer=top_layer, metadata=metadata, created=created or now(), digest=digest
            )
            image = self._write_big_data(image, big_data).with_recomputed_digest()
            image.digests  # noqa: B018 -- validates every manifest digest before the save
            records = list(self.file.records)
            if existing is None:
                records.append(image)
            else:
                records = [image if r.id == image_id else r for r in records]
            records = self._with_names(records, image, dedupe([*image.names, *names]))
            self.file.save(records)
        except BaseException:
            if created_dir:
                shutil.rmtree(self.data_dir(image_id), ignore_errors=True)
            raise
        result = self.file.get(image_id)
        assert result is not None
        return result

    def add_names(self, key: str, names: Sequence[str]) -> None:
        """Add names to an image, moving each off any other image."""
        image = self.require(key)
        self.file.save(self._with_names(list(self.file.records), image, dedupe([*image.names, *names])))

    def remove_names(self, key: str, names: Sequence[str]) -> None:
        """Remove names from an image (names-history keeps them)."""
        image = self.require(key)
        gone = set(names)
        kept = tuple(n for n in image.names if n not in gone)
        if kept != image.names:
            self.file.put(dataclasses.replace(image, names=kept))

    def set_big_data(self, key: str, items: Sequence[tuple[str, bytes]]) -> None:
        """Store big-data items of an image."""
        image = self._write_big_data(self.require(key), items)
        self.file.put(image.with_recomputed_digest())

    def set_metadata(self, key: str, metadata: str) -> None:
        """Replace an image's free-form metadata (containers/image keeps signature sizes there)."""
        image = self.require(key)
        if image.metadata != metadata:
            self.file.put(dataclasses.replace(image, metadata=metadata))

    def big_data(self, key: str, item: str) -> bytes:
        """Read one big-data item of an image (lock held for reading)."""
        image = self.require(key)
        if item not in image.big_data_names:
            raise NotFound(f"image {image.id} has no big data {item!r}")
        try:
            return (self.data_dir(image.id) / bigdata_filename(item)).read_bytes()
        except FileNotFoundError:
            raise NotFound(f"image {image.id}: big data {item!r} is missing on disk") from None

    def delete(self, image_id: str) -> None:
        """Remove an image record and its big-data directory."""
        self.file.remove([image_id])
        shutil.rmtree(self.data_dir(image_id), ignore_errors=True)
