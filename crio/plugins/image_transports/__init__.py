"""Image-transport plugin: ``docker`` (registries over the OCI distribution API), ``oci`` (layout
directories), ``oci-archive`` and ``docker-archive`` (tar files, for offline loading)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from crio.core.hookspecs import hookimpl
from crio.core.types import ImageReference, ImageSource, PullOptions
from crio.plugins.image_transports.archives import open_docker_archive, open_oci_archive
from crio.plugins.image_transports.oci_layout import open_oci
from crio.plugins.image_transports.registry import open_registry

Opener = Callable[[ImageReference, PullOptions], Awaitable[ImageSource]]

OPENERS: dict[str, Opener] = {
    "docker": open_registry,
    "oci": open_oci,
    "oci-archive": open_oci_archive,
    "docker-archive": open_docker_archive,
}


@hookimpl
def crio_image_transports() -> Sequence[str]:
    """The transports served here."""
    return list(OPENERS)


@hookimpl
def crio_image_open(reference: ImageReference, options: PullOptions) -> Awaitable[ImageSource] | None:
    """Open ``reference`` when its transport is one of ours (None otherwise)."""
    opener = OPENERS.get(reference.transport)
    return None if opener is None else opener(reference, options)
