"""ListImages, ImageStatus, PullImage, RemoveImage and ImageFsInfo: the wire side of the image service."""

from __future__ import annotations

import json
from typing import Any

from grpc import aio

from crio.core.api import api_pb2 as pb
from crio.core.errors import InvalidArgument
from crio.core.images.service import FsUsage, ImageInfo, ImageService
from crio.core.types import RegistryAuth


def image_message(info: ImageInfo) -> pb.Image:
    """Convert an :class:`ImageInfo` to the CRI Image message."""
    message = pb.Image(
        id=info.id,
        repo_tags=info.repo_tags,
        repo_digests=info.repo_digests,
        size=info.size,
        username=info.username,
        pinned=info.pinned,
        spec=pb.ImageSpec(image=info.id),
    )
    if info.uid is not None:
        message.uid.value = info.uid
    return message


def _usage(usage: FsUsage) -> pb.FilesystemUsage:
    return pb.FilesystemUsage(
        timestamp=usage.timestamp_ns,
        fs_id=pb.FilesystemIdentifier(mountpoint=usage.mountpoint),
        used_bytes=pb.UInt64Value(value=usage.used_bytes),
        inodes_used=pb.UInt64Value(value=usage.inodes_used),
    )


def _auth(config: pb.AuthConfig) -> RegistryAuth | None:
    if not config.ByteSize():
        return None
    return RegistryAuth(
        username=config.username,
        password=config.password,
        auth=config.auth,
        identity_token=config.identity_token,
        registry_token=config.registry_token,
    )


class ImageRPCs:
    """The ImageService RPC family."""

    def __init__(self, images: ImageService) -> None:
        self.images = images

    async def ListImages(
        self, request: pb.ListImagesRequest, context: aio.ServicerContext[Any, Any]
    ) -> pb.ListImagesResponse:
        """List images, optionally only the one the filter names."""
        infos = await self.images.list(request.filter.image.image if request.HasField("filter") else "")
        return pb.ListImagesResponse(images=[image_message(i) for i in infos])

    async def ImageStatus(
        self, request: pb.ImageStatusRequest, context: aio.ServicerContext[Any, Any]
    ) -> pb.ImageStatusResponse:
        """Describe one image; an absent image is an empty response, not an error (CRI)."""
        info = await self.images.status(request.image.image, request.verbose)
        if info is None:
            return pb.ImageStatusResponse()
        response = pb.ImageStatusResponse(image=image_message(info))
        if request.verbose:
            response.info["info"] = json.dumps({"imageSpec": info.config}, sort_keys=True)
        return response

    async def PullImage(
        self, request: pb.PullImageRequest, context: aio.ServicerContext[Any, Any]
    ) -> pb.PullImageResponse:
        """Pull an image (within the client's deadline) and return its ID as image_ref."""
        if not request.image.image:
            raise InvalidArgument("PullImage: image name is empty")
        namespace = request.sandbox_config.metadata.namespace if request.HasField("sandbox_config") else ""
        image_id = await self.images.pull(
            request.image.image, _auth(request.auth), context.time_remaining(), namespace
        )
        return pb.PullImageResponse(image_ref=image_id)

    async def RemoveImage(
        self, request: pb.RemoveImageRequest, context: aio.ServicerContext[Any, Any]
    ) -> pb.RemoveImageResponse:
        """Remove an image with all its tags; removing an absent image succeeds."""
        await self.images.remove(request.image.image)
        return pb.RemoveImageResponse()

    async def ImageFsInfo(
        self, request: pb.ImageFsInfoRequest, context: aio.ServicerContext[Any, Any]
    ) -> pb.ImageFsInfoResponse:
        """Bytes and inodes used by image layers and by container layers."""
        images, containers = await self.images.fs_info()
        return pb.ImageFsInfoResponse(
            image_filesystems=[_usage(images)], container_filesystems=[_usage(containers)]
        )
