"""Image volumes (CRI ``Mount.image``, the Kubernetes ImageVolume feature) of a container being created.

1. :func:`plan`, before anything exists: every image volume is checked (read-only, no host path, a relative
   sub path without ``..``) and its image found in the store by ID, name or digest, as the container's own
   image is. A missing image is NOT_FOUND naming it: the kubelet pulls it first, crio never does here.
   Each volume's image is then judged by the signature policy of the pod's namespace, exactly as the
   container's own image is: an image pulled by a pod of another namespace (whose policy accepted it) is
   refused (PERMISSION_DENIED naming the volume) when this namespace's policy rejects it.
2. The storage container is created with the images' IDs in its record (:meth:`Store.create_container`'s
   ``volume_images``), so RemoveImage refuses them (FAILED_PRECONDITION naming the container) while it exists.
3. :func:`mount_all`: each volume gets its own read-only mount of its image under the container's run
   directory (:mod:`crio.core.storage.imagemounts`; no sharing, so no reference counts) and its sub path is
   resolved inside that mount, symbolic links included. Each step registers its undo.
4. The spec binds the result read-only, ``nosuid``, ``nodev`` (never ``noexec``) at the container path.

The container record keeps :class:`MountedVolume` per volume, for ContainerStatus (``image.image_ref``).
Removing the container, also after a daemon restart or a crash, unmounts whatever its ``image-volumes``
directory holds (:meth:`Store.delete_container`), so nothing depends on in-memory state.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from crio.core.cleanup import CleanupStack
from crio.core.crirecords import ContainerConfig
from crio.core.errors import CrioError, InvalidArgument, NotFound
from crio.core.spec.mounts import check_image_mount, image_reference
from crio.core.storage.imagemounts import check_sub_path, resolve_in_root
from crio.core.storeaccess import StoreAccess

if TYPE_CHECKING:
    from crio.core.images.service import ImageService

# Mount flags of the host-side image mount (the container's bind adds its own).
MOUNT_OPTIONS = ("nodev", "nosuid")


@dataclass(frozen=True)
class PlannedVolume:
    """An image volume checked and resolved, not yet mounted."""

    index: int  # position in ContainerConfig.mounts
    container_path: str  # canonical
    image: str  # as the request named it
    image_id: str
    sub_path: str

    @property
    def name(self) -> str:
        """The name of its mount point under the container's ``image-volumes`` directory."""
        return str(self.index)


@dataclass(frozen=True)
class MountedVolume:
    """An image volume as the container record keeps it."""

    index: int
    container_path: str
    image: str
    image_id: str
    sub_path: str
    mount_point: str  # the read-only image mount
    source: str  # what the container binds: the mount point or the sub path inside it

    def to_dict(self) -> dict[str, Any]:
        """The JSON form kept in ``container.json``."""
        return asdict(self)


def _prefixed(error: CrioError, destination: str) -> CrioError:
    """The same error class with the mount named first."""
    return type(error)(f"image volume {destination}: {error}")


async def plan(images: ImageService, config: ContainerConfig, namespace: str) -> list[PlannedVolume]:
    """Check the image volumes of a ContainerConfig, find their images and judge each against the signature
    policy of the pod's ``namespace``; nothing is created.

    InvalidArgument for a writable volume, one with a host path too, or a sub path that is absolute or has
    ``..``; NotFound naming the image when it is not in the store; PermissionDenied (FailedPrecondition
    without a policy file) naming the volume when the policy refuses its image.
    """
    planned: list[PlannedVolume] = []
    judged: set[tuple[str, str]] = set()
    for index, mount in enumerate(config.mounts):
        reference = image_reference(mount)
        if not reference:
            continue
        destination = check_image_mount(mount)
        sub_path = mount.image_sub_path
        try:
            check_sub_path(sub_path)
        except InvalidArgument as exc:
            raise _prefixed(exc, destination) from None
        found = await images.resolve(reference)
        if found is None:
            raise NotFound(
                f"image {reference} of image volume {destination} is not in the store; pull it first"
            )
        if (str(found.id), reference) not in judged:
            try:
                await images.verify_for_container(found, reference, namespace)
            except CrioError as exc:
                raise _prefixed(exc, destination) from None
            judged.add((str(found.id), reference))
        planned.append(PlannedVolume(index, destination, reference, str(found.id), sub_path))
    return planned


async def mount_all(
    access: StoreAccess,
    container_id: str,
    planned: Sequence[PlannedVolume],
    userns_options: Sequence[str],
    undo: CleanupStack,
) -> list[MountedVolume]:
    """Mount every planned volume's image read-only for the container and resolve its sub path inside the
    mount (NotFound when it does not exist). Every mount registers its undo on ``undo``."""
    store = access.store
    mounted: list[MountedVolume] = []
    for volume in planned:
        point: Path = await access.call(
            store.mount_image,
            container_id,
            volume.image_id,
            volume.name,
            "",
            [*MOUNT_OPTIONS, *userns_options],
        )
        undo.push(f"image volume {volume.container_path}", _unmounter(access, container_id, volume.name))
        try:
            source = await asyncio.to_thread(resolve_in_root, point, volume.sub_path)
        except (InvalidArgument, NotFound) as exc:
            raise _prefixed(exc, volume.container_path) from None
        mounted.append(
            MountedVolume(
                volume.index,
                volume.container_path,
                volume.image,
                volume.image_id,
                volume.sub_path,
                str(point),
                str(source),
            )
        )
    return mounted


def _unmounter(access: StoreAccess, container_id: str, name: str) -> Callable[[], Awaitable[None]]:
    """The undo step of one image mount."""

    async def unmount() -> None:
        await access.call(access.store.unmount_image, container_id, name)

    return unmount


def sources(mounted: Sequence[MountedVolume]) -> dict[str, str]:
    """Container path → the directory to bind, for the spec builder."""
    return {volume.container_path: volume.source for volume in mounted}


def image_refs(records: Sequence[Mapping[str, Any]]) -> dict[int, str]:
    """Mount index → image ID, from the container record's volumes (for ContainerStatus)."""
    return {int(r.get("index", -1)): str(r.get("image_id", "")) for r in records}
