"""The image service: pull (deduplicated, cancellable), list, status, remove and filesystem usage."""

from __future__ import annotations

import asyncio
import fnmatch
import hashlib
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from crio.core.config import Config
from crio.core.errors import (
    CrioError,
    DeadlineExceeded,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    Unauthenticated,
    Unavailable,
)
from crio.core.images import names as namesmod
from crio.core.images import pull as pullmod
from crio.core.images import registries, shortnames
from crio.core.images.imagetrust import ImageTrust
from crio.core.images.reference import DOCKER, parse_transport_reference
from crio.core.images.registries import RegistriesConf
from crio.core.images.trust.signature import Signature
from crio.core.plugins import PluginManager
from crio.core.storeaccess import StoreAccess
from crio.core.types import ImageReference, ImageSource, PullOptions, RegistryAuth

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ImageInfo:
    """What CRI reports about one image."""

    id: str
    repo_tags: list[str]
    repo_digests: list[str]
    size: int
    uid: int | None
    username: str
    pinned: bool
    config: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class FsUsage:
    """Bytes and inodes used under one mount point (for ImageFsInfo)."""

    mountpoint: str
    used_bytes: int
    inodes_used: int
    timestamp_ns: int


def user_of(config: dict[str, Any]) -> tuple[int | None, str]:
    """CRI's view of an image config's USER: ``(uid, "")`` for a numeric user, ``(None, name)`` otherwise."""
    user = str((config.get("config") or {}).get("User") or "")
    name = user.split(":", 1)[0]
    if not name:
        return None, ""
    if name.isdigit():
        return int(name), ""
    return None, name


class _InFlight:
    """One running pull and how many callers wait for it."""

    def __init__(self, task: asyncio.Task[str]) -> None:
        self.task = task
        self.waiters = 0


class ImageService:
    """Images in the containers/storage store, as the CRI ImageService sees them."""

    def __init__(self, config: Config, access: StoreAccess, plugins: PluginManager) -> None:
        self.config = config
        self.access = access
        self.plugins = plugins
        self.trust = ImageTrust(config)
        self._pulls: dict[tuple[str, str, str, str], _InFlight] = {}
        self._configs: dict[str, dict[str, Any]] = {}
        # ListImages answers from here: an image's info only changes with its names, digest or big data.
        self._infos: dict[tuple[Any, ...], ImageInfo] = {}

    # ----------------------------------------------------------------------------------------------- lookups

    async def resolve(self, image: str) -> Any | None:
        """Find a stored image by ID, unique ID prefix, name (normalized) or ``repo@digest``."""
        return await self.access.call(self._resolve, image)

    def _resolve(self, image: str) -> Any | None:
        """:meth:`resolve` on a store thread."""
        text = image.strip()
        if not text:
            raise InvalidArgument("image name is empty")
        store = self.access.store
        candidates: list[str] = []
        try:
            ref = parse_transport_reference(text)
            if _is_short_name(text, ref):
                candidates.extend(shortnames.local_candidates(text, self.registries_conf()))
            else:
                candidates.append(ref.name)
        except InvalidArgument:
            if not namesmod.looks_like_id(text):
                raise
        if namesmod.looks_like_id(text):
            candidates.append(text.removeprefix(namesmod.DIGEST_PREFIX))
        for candidate in candidates:
            found = store.image(candidate)
            if found is not None:
                return found
        for candidate in candidates:
            repo, _, digest = namesmod.split_name(candidate)
            if not digest:
                continue
            for img in store.images():
                if digest in _image_digests(img) and any(
                    namesmod.split_name(n)[0] == repo for n in img.names
                ):
                    return img
        return None

    def _config_of(self, img: Any) -> dict[str, Any]:
        """The image's config (cached: an image ID names immutable content); on a store thread."""
        cached = self._configs.get(img.id)
        if cached is None:
            try:
                cached = json.loads(self.access.store.image_big_data(img.id, f"sha256:{img.id}"))
            except (NotFound, ValueError, OSError):
                cached = {}
            self._configs[img.id] = cached
        return cached

    def _info(self, img: Any, size: int, with_config: bool = False) -> ImageInfo:
        """Describe a stored image the way CRI reports it; on a store thread."""
        config = self._config_of(img)
        uid, username = user_of(config)
        return ImageInfo(
            id=img.id,
            repo_tags=namesmod.repo_tags(img.names),
            repo_digests=namesmod.repo_digests(img.names, _image_digests(img)),
            size=size,
            uid=uid,
            username=username,
            pinned=self._pinned(img.names),
            config=config if with_config else {},
        )

    async def info(self, img: Any, with_config: bool = False) -> ImageInfo:
        """Describe a stored image the way CRI reports it."""

        def describe() -> ImageInfo:
            return self._info(img, self.access.store.image_sizes([img.id]).get(img.id, 0), with_config)

        return await self.access.call(describe)

    def _pinned(self, names: Sequence[str]) -> bool:
        patterns = self.config.get("crio.image.pinned_images")
        return any(fnmatch.fnmatchcase(n, p) for n in names for p in patterns)

    # ------------------------------------------------------------------------------------------ CRI calls

    async def list(self, image_filter: str = "") -> Sequence[ImageInfo]:
        """All complete images, or only the one ``image_filter`` names: one trip to a store thread."""
        return await self.access.call(self._list, image_filter)

    def _list(self, image_filter: str) -> Sequence[ImageInfo]:
        store = self.access.store
        if image_filter:
            found = self._resolve(image_filter)
            images = [found] if found is not None else []
        else:
            images = store.images()
        patterns = tuple(self.config.get("crio.image.pinned_images"))
        keys = {
            img.id: (img.id, tuple(img.names), img.digest, tuple(img.big_data_names), patterns)
            for img in images
        }
        missing = [img.id for img in images if keys[img.id] not in self._infos]
        sizes = store.image_sizes(missing) if missing else {}
        result = []
        for img in images:
            info = self._infos.get(keys[img.id])
            if info is None:
                if img.id not in sizes:
                    continue  # removed between the two reads: it is gone, leave it out
                info = self._infos[keys[img.id]] = self._info(img, sizes[img.id])
            result.append(info)
        if len(self._infos) > 2 * len(images) + 64:  # forget images that are gone or renamed
            live = set(keys.values())
            self._infos = {k: v for k, v in self._infos.items() if k in live}
        return result

    async def status(self, image: str, verbose: bool = False) -> ImageInfo | None:
        """The image ``image`` names, or None when it is not in the store: one trip to a store thread."""

        def lookup() -> ImageInfo | None:
            found = self._resolve(image)
            if found is None:
                return None
            size = self.access.store.image_sizes([found.id]).get(found.id)
            return None if size is None else self._info(found, size, with_config=verbose)

        return await self.access.call(lookup)

    async def remove(self, image: str) -> None:
        """Remove the image ``image`` names, with all its names; an absent image is not an error."""
        found = await self.resolve(image)
        if found is None:
            return
        users = [c.id for c in await self.access.call(self.access.store.containers) if c.image == found.id]
        if users:
            raise FailedPrecondition(f"image {image} ({found.id}) is used by container(s) {', '.join(users)}")
        try:
            await self.access.bulk(self.access.store.delete_image, found.id)
        except NotFound:
            return
        self._configs.pop(found.id, None)
        log.info("removed image %s (%s)", found.id, ", ".join(found.names) or "no names")

    async def fs_info(self) -> tuple[FsUsage, FsUsage]:
        """Usage of image layers and of container layers (bytes, inodes)."""
        store = self.access.store
        images, containers = await self.access.bulk(store.usage)
        now = time.time_ns()
        base = Path(str(self.config.get("crio.root")))
        driver = store.driver
        return (
            FsUsage(str(base / f"{driver}-images"), images[0], images[1], now),
            FsUsage(str(base / f"{driver}-containers"), containers[0], containers[1], now),
        )

    async def pull(
        self, image: str, auth: RegistryAuth | None, timeout: float | None, namespace: str = ""
    ) -> str:
        """Pull ``image`` and return its ID. A short name is resolved through registries.conf (aliases,
        unqualified-search-registries, short-name-mode) and its candidates are tried in order; the image is
        named after the fully-qualified candidate that worked.

        Concurrent pulls of one image (same credentials, same pod namespace, hence the same signature
        policy) share one download. When every caller waiting for a pull has given up (deadline or
        cancel), the pull is cancelled and leaves nothing behind.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        candidates = await self._candidates(image)
        failures: list[CrioError] = []
        for ref in candidates:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                return await self._pull_shared(ref, image, auth, left, namespace)
            except (NotFound, Unavailable, Unauthenticated) as exc:
                if len(candidates) == 1:
                    raise
                failures.append(exc)
        text = f"pulling short name {image!r}: every candidate failed: " + "; ".join(map(str, failures))
        if all(isinstance(f, NotFound) for f in failures):
            raise NotFound(text)
        raise Unavailable(text)

    async def _candidates(self, image: str) -> Sequence[ImageReference]:
        """What ``image`` may be pulled as: itself, or a short name's fully-qualified candidates."""
        ref = parse_transport_reference(image)
        text = image.strip()
        if not _is_short_name(text, ref):
            return [ref]
        conf = await asyncio.to_thread(self.registries_conf)
        mode = str(self.config.get("crio.image.short_name_mode"))
        resolution = shortnames.resolve_short_name(text, conf, mode)
        if resolution.description:
            log.info("%s: %s", resolution.description, ", ".join(map(str, resolution.candidates)))
        return [ImageReference(DOCKER, str(c)) for c in resolution.candidates]

    def registries_conf(self) -> RegistriesConf:
        """The current registries.conf with its drop-ins (re-read when a file changed, if configured)."""
        holder = registries.config_for(
            str(self.config.get("crio.image.registries_conf")),
            str(self.config.get("crio.image.registries_conf_dir")),
        )
        return holder.load(bool(self.config.get("crio.image.auto_reload_registries")))

    async def _pull_shared(
        self,
        ref: ImageReference,
        image: str,
        auth: RegistryAuth | None,
        timeout: float | None,
        namespace: str,
    ) -> str:
        key = (ref.transport, ref.name, _auth_key(auth), namespace)
        inflight = self._pulls.get(key)
        if inflight is None:
            options = self.pull_options(auth)
            task = asyncio.create_task(self._pull(ref, options, namespace), name=f"pull {ref.name}")
            inflight = self._pulls[key] = _InFlight(task)
            task.add_done_callback(lambda _t: self._pulls.pop(key, None))
        inflight.waiters += 1
        try:
            return await asyncio.wait_for(asyncio.shield(inflight.task), timeout)
        except (TimeoutError, asyncio.CancelledError) as exc:
            inflight.waiters -= 1
            if inflight.waiters == 0 and not inflight.task.done():
                inflight.task.cancel()
                await asyncio.gather(inflight.task, return_exceptions=True)
            if isinstance(exc, TimeoutError):
                raise DeadlineExceeded(f"pull of {image} did not finish within the deadline") from None
            raise

    def pull_options(self, auth: RegistryAuth | None) -> PullOptions:
        """What the transports need from the configuration."""
        image = "crio.image."
        return PullOptions(
            auth=auth,
            auth_file=str(self.config.get(image + "global_auth_file")),
            registries_conf=str(self.config.get(image + "registries_conf")),
            registries_conf_dir=str(self.config.get(image + "registries_conf_dir")),
            registries_d=str(self.config.get(image + "registries_d")),
            registries_auto_reload=bool(self.config.get(image + "auto_reload_registries")),
        )

    async def _pull(self, ref: ImageReference, options: PullOptions, namespace: str) -> str:
        started = time.monotonic()

        async def verify(source: ImageSource, top_manifest: bytes) -> Sequence[Signature]:
            return await self.trust.verify_source(ref, source, top_manifest, namespace)

        image_id = await pullmod.pull(self.access, self.plugins, ref, options, self.tmp_dir(), verify)
        log.info("pulled %s as %s in %.2fs", ref.name, image_id, time.monotonic() - started)
        return image_id

    async def verify_for_container(self, img: Any, requested: str, namespace: str) -> None:
        """Refuse (PermissionDenied) to create a container from ``img`` when the signature policy for
        ``namespace`` no longer accepts it, judged with the signatures stored at pull."""

        def read(key: str) -> bytes:
            try:
                data: bytes = self.access.store.image_big_data(img.id, key)
                return data
            except NotFound:
                return b""

        async def read_big_data(key: str) -> bytes:
            return await self.access.call(read, key)

        await self.trust.verify_stored(img, requested, namespace, read_big_data)

    def tmp_dir(self) -> Path:
        """Where pulls keep their temporary files."""
        return Path(str(self.config.get("crio.root"))) / "tmp"


def _is_short_name(text: str, ref: ImageReference) -> bool:
    """Whether ``text`` (parsed as ``ref``) is a short name that registries.conf resolves: a docker name
    without a registry and without an explicit ``docker://`` (which means docker.io, as it always did)."""
    return ref.transport == DOCKER and not text.startswith("docker://") and shortnames.is_short_name(text)


def _image_digests(img: Any) -> list[str]:
    digests = list(getattr(img, "digests", []) or [])
    if img.digest and img.digest not in digests:
        digests.insert(0, img.digest)
    return digests


def _auth_key(auth: RegistryAuth | None) -> str:
    if auth is None:
        return ""
    material = "\0".join((auth.username, auth.password, auth.auth, auth.identity_token, auth.registry_token))
    return hashlib.sha256(material.encode()).hexdigest()
