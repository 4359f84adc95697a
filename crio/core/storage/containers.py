"""The container store: ``<driver>-containers/containers.json``, big data and the containers' directories.

Every method expects the caller to hold ``containers.lock`` (write lock for changes) and to have called
``file.reload_if_changed()`` under it.
"""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from crio.core.errors import AlreadyExists, InvalidArgument, NotFound
from crio.core.storage import imagemounts
from crio.core.storage.atomic import atomic_write
from crio.core.storage.lockfile import LockFile
from crio.core.storage.recordfile import RecordFile
from crio.core.storage.records import Container, bigdata_filename, now, sha256_digest


class ContainerStore:
    """Container records, their big data, ContainerDirectory and ContainerRunDirectory."""

    def __init__(self, graphroot: Path, runroot: Path, driver: str) -> None:
        self.dir = graphroot / f"{driver}-containers"
        self.run_dir = runroot / f"{driver}-containers"
        self.file: RecordFile[Container] = RecordFile(
            self.dir / "containers.json", self.dir / "containers.lock", Container
        )

    @property
    def lock(self) -> LockFile:
        """The ``containers.lock`` lock file."""
        return self.file.lock

    def data_dir(self, container_id: str) -> Path:
        """``<graphroot>/<driver>-containers/<id>/`` (big data; holds ``userdata/``)."""
        return self.dir / container_id

    def directory(self, container_id: str) -> Path:
        """The ContainerDirectory: ``<graphroot>/<driver>-containers/<id>/userdata``."""
        return self.dir / container_id / "userdata"

    def run_directory(self, container_id: str) -> Path:
        """The ContainerRunDirectory: ``<runroot>/<driver>-containers/<id>/userdata``."""
        return self.run_dir / container_id / "userdata"

    def image_mount_dir(self, container_id: str) -> Path:
        """Where the container's image mounts live: ``<runroot>/<driver>-containers/<id>/image-volumes``."""
        return self.run_dir / container_id / imagemounts.DIRECTORY

    def require(self, key: str) -> Container:
        """By ID, name or unique ID prefix, or raise NotFound."""
        found = self.file.lookup(key)
        if found is None:
            raise NotFound(f"container {key} not found in the store")
        return found

    def check_free(self, container_id: str, names: Sequence[str]) -> None:
        """Raise AlreadyExists when the ID or a name is taken (the message names the holder)."""
        if self.file.get(container_id) is not None:
            raise AlreadyExists(f"container ID {container_id} is already in use")
        for name in names:
            holder = self.file.by_name(name)
            if holder is not None:
                raise AlreadyExists(f"container name {name!r} is already in use by container {holder.id}")

    def create(
        self,
        container_id: str,
        names: Sequence[str],
        image_id: str,
        layer: str,
        metadata: str,
        flags: Mapping[str, Any],
    ) -> Container:
        """Add the record and make both directories (write lock held)."""
        self.check_free(container_id, names)
        if len(set(names)) != len(names):
            raise InvalidArgument(f"container {container_id}: duplicate names {list(names)}")
        record = Container(
            id=container_id,
            names=tuple(names),
            image=image_id,
            layer=layer,
            metadata=metadata,
            created=now(),
            flags=dict(flags),
        )
        for path in (self.directory(container_id), self.run_directory(container_id)):
            path.mkdir(mode=0o700, parents=True, exist_ok=True)
        try:
            self.file.put(record)
        except BaseException:
            self.remove_directories(container_id)
            raise
        return record

    def remove_directories(self, container_id: str) -> None:
        """Remove ``<id>/`` under both the graph root and the run root."""
        shutil.rmtree(self.data_dir(container_id), ignore_errors=True)
        shutil.rmtree(self.run_dir / container_id, ignore_errors=True)

    def set_big_data(self, key: str, item: str, data: bytes) -> None:
        """Store one big-data item of a container (write lock held)."""
        container = self.require(key)
        if not item:
            raise InvalidArgument(f"container {container.id}: empty big-data key")
        directory = self.data_dir(container.id)
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        atomic_write(directory / bigdata_filename(item), data)
        names = (
            container.big_data_names
            if item in container.big_data_names
            else (*container.big_data_names, item)
        )
        self.file.put(
            dataclasses.replace(
                container,
                big_data_names=names,
                big_data_sizes={**container.big_data_sizes, item: len(data)},
                big_data_digests={**container.big_data_digests, item: sha256_digest(data)},
            )
        )

    def big_data(self, key: str, item: str) -> bytes:
        """Read one big-data item of a container."""
        container = self.require(key)
        if item not in container.big_data_names:
            raise NotFound(f"container {container.id} has no big data {item!r}")
        try:
            return (self.data_dir(container.id) / bigdata_filename(item)).read_bytes()
        except FileNotFoundError:
            raise NotFound(f"container {container.id}: big data {item!r} is missing on disk") from None
